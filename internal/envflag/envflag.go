// Package envflag reads boolean settings from environment variables with
// the usual spellings, and rejects anything else with an error naming the
// variable, so that a typo cannot silently turn a setting off.
package envflag

import (
	"fmt"
	"os"
	"strings"
)

// ParseBool reads value as a boolean: 1, true, yes, on and 0, false, no,
// off, in any case and with surrounding white space; the empty string is
// false. Anything else is an error naming the variable name.
func ParseBool(name, value string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(value)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "", "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%s=%q is not a boolean: use 1/0, true/false, yes/no or on/off", name, value)
}

// Bool reads the environment variable name with ParseBool; unset is false.
func Bool(name string) (bool, error) {
	return ParseBool(name, os.Getenv(name))
}
