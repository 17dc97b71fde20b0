// Package shaders holds the engine's GLSL compute shaders (*.comp) and their
// SPIR-V (*.spv), compiled by `make spirv` and embedded so that building the
// Go program needs no shader compiler.
package shaders

import (
	"embed"
	"strings"
)

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

// All returns every compiled shader by name (without extension).
func All() (map[string][]byte, error) {
	entries, err := spirv.ReadDir(".")
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(entries))
	for _, e := range entries {
		b, err := spirv.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		out[strings.TrimSuffix(e.Name(), ".spv")] = b
	}
	return out, nil
}
