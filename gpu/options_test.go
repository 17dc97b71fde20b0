package gpu_test

import (
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// TestEnvOptions: SHLPT_VK_VALIDATE takes the usual boolean spellings, and
// any other value is an error naming the variable, from EnvOptions and from
// Open and Devices with OptionsFromEnv, instead of silently meaning "off".
func TestEnvOptions(t *testing.T) {
	t.Setenv(gpu.DeviceEnv, "llvmpipe")
	for v, want := range map[string]bool{"yes": true, "TRUE": true, "On": true, "1": true, "no": false, "0": false, "off": false, "": false} {
		t.Setenv(gpu.ValidateEnv, v)
		o, err := gpu.EnvOptions()
		if err != nil || o.Validate != want || o.Device != "llvmpipe" {
			t.Errorf("%s=%q: %+v, %v", gpu.ValidateEnv, v, o, err)
		}
	}
	t.Setenv(gpu.ValidateEnv, "maybe")
	check := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), gpu.ValidateEnv) || !strings.Contains(err.Error(), "maybe") {
			t.Errorf("%s with %s=maybe: %v", what, gpu.ValidateEnv, err)
		}
	}
	_, err := gpu.EnvOptions()
	check("EnvOptions", err)
	d, err := gpu.Open(gpu.OptionsFromEnv())
	if err == nil {
		d.Close()
	}
	check("Open", err)
	_, err = gpu.Devices(gpu.OptionsFromEnv())
	check("Devices", err)

	t.Setenv(gpu.ValidateEnv, "")
	t.Setenv(gpu.ForceStagingEnv, "on")
	if o, err := gpu.EnvOptions(); err != nil || !o.ForceStaging {
		t.Errorf("%s=on: %+v, %v", gpu.ForceStagingEnv, o, err)
	}
	t.Setenv(gpu.ForceStagingEnv, "staged")
	if _, err := gpu.EnvOptions(); err == nil || !strings.Contains(err.Error(), gpu.ForceStagingEnv) {
		t.Errorf("%s=staged: %v", gpu.ForceStagingEnv, err)
	}
}
