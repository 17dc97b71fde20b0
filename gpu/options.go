package gpu

import (
	"errors"
	"os"

	"github.com/shlpt-vk/shlpt-vk/internal/envflag"
)

// EnvOptions returns options from SHLPT_VK_DEVICE, SHLPT_VK_VALIDATE,
// SHLPT_VK_PIPELINE_CACHE and SHLPT_VK_FORCE_STAGING. SHLPT_VK_VALIDATE and
// SHLPT_VK_FORCE_STAGING take 1/0, true/false, yes/no or on/off in any case
// (unset or empty: off); any other value is an error naming the variable,
// with the other options still filled in.
func EnvOptions() (Options, error) {
	o := Options{
		Device:           os.Getenv(DeviceEnv),
		PipelineCacheDir: os.Getenv(PipelineCacheEnv),
	}
	var err, serr error
	o.Validate, err = envflag.Bool(ValidateEnv)
	o.ForceStaging, serr = envflag.Bool(ForceStagingEnv)
	return o, errors.Join(err, serr)
}
