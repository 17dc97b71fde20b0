// Package shaders holds the engine's GLSL compute shaders (*.comp) and their
// SPIR-V (*.spv), compiled by `make spirv` and embedded so that building the
// Go program needs no shader compiler.
package shaders

import "embed"

//go:embed *.spv
var spirv embed.FS

// SPIRV returns the compiled shader name (without extension), or nil if it
// does not exist; creating a pipeline from nil SPIR-V is an error that says
// to run make spirv.
func SPIRV(name string) []byte {
	b, err := spirv.ReadFile(name + ".spv")
	if err != nil {
		return nil
	}
	return b
}
