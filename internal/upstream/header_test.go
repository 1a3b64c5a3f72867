package upstream

import "testing"

func TestRecycleHeader(t *testing.T) {
	h := NewHeader(2)
	h["A"] = []string{"1"}
	h["B"] = []string{"2"}
	RecycleHeader(h)
	if len(h) != 0 {
		t.Fatalf("recycled header still has %d fields", len(h))
	}
	big := NewHeader(maxPooledFields + 1)
	for i := range maxPooledFields + 1 {
		big[string(rune('A'+i))] = nil
	}
	RecycleHeader(big)
	if len(big) != maxPooledFields+1 {
		t.Fatalf("a header over %d fields was cleared for reuse", maxPooledFields)
	}
	RecycleHeader(nil) // no panic
	if got := NewHeader(1); len(got) != 0 {
		t.Fatalf("NewHeader returned %d fields", len(got))
	}
}
