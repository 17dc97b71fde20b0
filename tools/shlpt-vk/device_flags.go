package main

import (
	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/spf13/pflag"
)

// deviceFlags adds --device and --validate to fs and returns a function that
// yields the gpu options: environment first (SHLPT_VK_DEVICE,
// SHLPT_VK_VALIDATE), then the flags when given.
func deviceFlags(fs *pflag.FlagSet) func() gpu.Options {
	dev := fs.String("device", "", "Vulkan device: index or name substring (default: "+gpu.DeviceEnv+", else discrete > integrated > virtual > CPU)")
	val := fs.Bool("validate", false, "enable the Khronos validation layer (also "+gpu.ValidateEnv+"=1)")
	return func() gpu.Options {
		o := gpu.OptionsFromEnv()
		if fs.Changed("device") {
			o.Device = *dev
		}
		if *val {
			o.Validate = true
		}
		return o
	}
}
