package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// fileStamp identifies a config file's content, so a watcher reloads only
// on a real change (editors often rewrite files with the same bytes).
type fileStamp struct {
	modTime time.Time
	size    int64
	sum     [sha256.Size]byte
}

func stampOf(path string) (fileStamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{modTime: st.ModTime(), size: st.Size(), sum: sha256.Sum256(b)}, nil
}

// watch polls the config file every reload.watch_interval while
// reload.watch is on, and reloads when its content changed. Polling works
// the same on every file system and across the atomic renames that
// config-management tools do, which inotify watches on the file miss.
func (a *App) watch(ctx context.Context) {
	for {
		cfg := a.snap.Load().Config()
		interval := cfg.Reload.WatchInterval.D()
		if interval <= 0 {
			interval = 2 * time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		if !a.snap.Load().Config().Reload.Watch {
			continue
		}
		st, err := stampOf(a.opts.ConfigPath)
		if err != nil {
			continue
		}
		a.mu.Lock()
		changed := !bytes.Equal(st.sum[:], a.fileStamp.sum[:])
		if changed {
			// Remember this content even if the reload fails, so a broken
			// file is reported once, not every interval.
			a.fileStamp = st
		}
		a.mu.Unlock()
		if changed {
			a.Reload(ctx)
		}
	}
}
