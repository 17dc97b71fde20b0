# shlpt-vk build targets. `go build` needs no shader compiler: the SPIR-V in
# shaders/*.spv is committed and embedded. `make spirv` regenerates it.

GLSLC       ?= glslc
# Vulkan 1.1 SPIR-V (subgroup operations); -O for size/speed. No debug info so
# that the output depends only on the source and the compiler version.
GLSLC_FLAGS := --target-env=vulkan1.1 --target-spv=spv1.3 -O -Werror -Ishaders

SHADERS := $(wildcard shaders/*.comp)
SPIRV   := $(SHADERS:.comp=.spv)
GLSL_INCLUDES := $(wildcard shaders/*.glsl)

.PHONY: all build spirv test test-short check fmt vet bench clean-spirv

all: build

build:
	go build -o bin/shlpt-vk ./tools/shlpt-vk

spirv: FORCE
	@$(MAKE) -B --no-print-directory $(SPIRV)

FORCE:

shaders/%.spv: shaders/%.comp $(GLSL_INCLUDES)
	$(GLSLC) $(GLSLC_FLAGS) -o $@ $<

clean-spirv:
	rm -f shaders/*.spv

# The test command of README.md. LP_NUM_THREADS=0 makes lavapipe run shaders on
# the calling thread: per-dispatch overhead drops from ~29 µs to ~0.5 µs, which
# is what unit tests with tiny shapes need.
test:
	LP_NUM_THREADS=0 go test -race -timeout 45m ./...

test-short:
	LP_NUM_THREADS=0 go test -short ./...

fmt:
	gofmt -l -w .

vet:
	go vet ./...

# Static checks that CI runs besides the tests.
check:
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	go vet ./...
