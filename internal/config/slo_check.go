package config

func (c *Config) applySLODefaults() {}

func (r *Route) applySLODefaults(c *Config) {}

func (v *checker) slos() {}
