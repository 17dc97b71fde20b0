package envflag

import (
	"strings"
	"testing"
)

func TestParseBool(t *testing.T) {
	for _, v := range []string{"1", "true", "TRUE", "True", "yes", "YES", "on", "On", " 1 "} {
		if b, err := ParseBool("X", v); err != nil || !b {
			t.Errorf("%q: %v, %v; want true", v, b, err)
		}
	}
	for _, v := range []string{"", "0", "false", "FALSE", "no", "No", "off", "OFF"} {
		if b, err := ParseBool("X", v); err != nil || b {
			t.Errorf("%q: %v, %v; want false", v, b, err)
		}
	}
	for _, v := range []string{"2", "y", "n", "enable", "truee", "-1", "t"} {
		_, err := ParseBool("SHLPT_VK_VALIDATE", v)
		if err == nil || !strings.Contains(err.Error(), "SHLPT_VK_VALIDATE") || !strings.Contains(err.Error(), v) {
			t.Errorf("%q: err = %v; want one naming the variable and the value", v, err)
		}
	}
}

func TestBool(t *testing.T) {
	t.Setenv("SHLPT_ENVFLAG_TEST", "Yes")
	if b, err := Bool("SHLPT_ENVFLAG_TEST"); err != nil || !b {
		t.Errorf("Yes: %v, %v", b, err)
	}
	t.Setenv("SHLPT_ENVFLAG_TEST", "maybe")
	if _, err := Bool("SHLPT_ENVFLAG_TEST"); err == nil {
		t.Error("maybe: no error")
	}
}
