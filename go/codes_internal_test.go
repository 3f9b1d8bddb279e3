package diffid

import "testing"

// TestCodesMatchC: the Go codes, their names and their sentinels are the C library's.
func TestCodesMatchC(t *testing.T) {
	for c := CodeOK; c <= CodeInternal; c++ {
		if got := c.cName(); got != c.String() || got == "" {
			t.Errorf("code %d: C name %q, Go name %q", uint32(c), got, c.String())
		}
		if (c.Sentinel() == nil) != (c == CodeOK) {
			t.Errorf("code %d: sentinel %v", uint32(c), c.Sentinel())
		}
	}
	if got := Code(12).cName(); got != "" {
		t.Errorf("code 12 has a C name %q: a new code needs a Go constant and sentinel", got)
	}
	if Code(12).Sentinel() != nil || Code(12).String() != "code(12)" {
		t.Errorf("unknown code: %v %q", Code(12).Sentinel(), Code(12).String())
	}
}
