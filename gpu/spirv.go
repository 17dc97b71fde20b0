package gpu

import (
	"encoding/binary"
	"fmt"
)

// A kernel's declared bindings must match its shader: a mismatch is
// undefined behaviour in Vulkan, and lavapipe crashes on it while creating
// the pipeline, before the validation layer can say anything. So the
// engine reads the descriptor bindings out of the SPIR-V itself and
// compares.

// descriptorClass is what a shader binding is, as far as layouts care.
type descriptorClass uint8

const (
	classStorageBuffer descriptorClass = iota + 1
	classUniformTexel
	classStorageTexel
	classUniformBuffer
	classOther
)

func (c descriptorClass) String() string {
	switch c {
	case classStorageBuffer:
		return "a storage buffer"
	case classUniformTexel:
		return "a uniform texel buffer (samplerBuffer)"
	case classStorageTexel:
		return "a storage texel buffer (imageBuffer)"
	case classUniformBuffer:
		return "a uniform buffer"
	}
	return "an unsupported descriptor"
}

func (k BindingKind) class() descriptorClass {
	switch k {
	case TexelRGBA32F, TexelR32F, TexelRGBA16UI, TexelR16UI:
		return classUniformTexel
	case ImageRGBA32F:
		return classStorageTexel
	}
	return classStorageBuffer
}

// shaderBinding is one descriptor binding a shader declares.
type shaderBinding struct {
	set, binding uint32
	class        descriptorClass
	readOnly     bool // every member of the buffer block is NonWritable
	intTexels    bool // a texel buffer whose sampled type is an integer (usamplerBuffer, isamplerBuffer)
}

// reflectSPIRV lists the descriptor bindings of a compute shader and the
// size of its push-constant block in bytes (-1 when it cannot tell).
func reflectSPIRV(code []byte) ([]shaderBinding, int, error) {
	if len(code) < 20 || len(code)%4 != 0 {
		return nil, 0, fmt.Errorf("SPIR-V of %d bytes", len(code))
	}
	w := make([]uint32, len(code)/4)
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(code[4*i:])
	}
	if w[0] != 0x07230203 {
		return nil, 0, fmt.Errorf("not SPIR-V (magic %#x)", w[0])
	}
	const (
		opTypeInt          = 21
		opTypeFloat        = 22
		opTypeVector       = 23
		opTypeImage        = 25
		opTypeSampledImage = 27
		opTypeStruct       = 30
		opTypePointer      = 32
		opVariable         = 59
		opDecorate         = 71
		opMemberDecorate   = 72

		decBufferBlock   = 3
		decNonWritable   = 24
		decBinding       = 33
		decDescriptorSet = 34
		decOffset        = 35

		scUniformConstant = 0
		scUniform         = 2
		scPushConstant    = 9
		scStorageBuffer   = 12
	)
	type variable struct{ ptrType, storage uint32 }
	var (
		binding   = map[uint32]uint32{}
		set       = map[uint32]uint32{}
		bufferBlk = map[uint32]bool{}
		pointers  = map[uint32][2]uint32{} // id -> storage class, pointee
		images    = map[uint32]uint32{}    // id -> sampled (1 sampled, 2 storage)
		imageDim  = map[uint32]uint32{}
		imageType = map[uint32]uint32{} // image id -> sampled type id
		intTypes  = map[uint32]bool{}
		sampled   = map[uint32]uint32{} // sampled image id -> image id
		structs   = map[uint32][]uint32{}
		sizes     = map[uint32]int{} // scalar and vector sizes
		nonWrit   = map[uint32]map[uint32]bool{}
		offsets   = map[uint32]map[uint32]int{}
		variables = map[uint32]variable{}
		varOrder  []uint32
	)
	for i := 5; i < len(w); {
		n := int(w[i] >> 16)
		op := w[i] & 0xffff
		if n == 0 || i+n > len(w) {
			return nil, 0, fmt.Errorf("malformed SPIR-V instruction at word %d", i)
		}
		a := w[i+1 : i+n]
		switch op {
		case opDecorate:
			if len(a) >= 2 {
				switch a[1] {
				case decBinding:
					if len(a) >= 3 {
						binding[a[0]] = a[2]
					}
				case decDescriptorSet:
					if len(a) >= 3 {
						set[a[0]] = a[2]
					}
				case decBufferBlock:
					bufferBlk[a[0]] = true
				}
			}
		case opMemberDecorate:
			if len(a) >= 3 {
				switch a[2] {
				case decNonWritable:
					if nonWrit[a[0]] == nil {
						nonWrit[a[0]] = map[uint32]bool{}
					}
					nonWrit[a[0]][a[1]] = true
				case decOffset:
					if len(a) >= 4 {
						if offsets[a[0]] == nil {
							offsets[a[0]] = map[uint32]int{}
						}
						offsets[a[0]][a[1]] = int(a[3])
					}
				}
			}
		case opTypeInt, opTypeFloat:
			if len(a) >= 2 {
				sizes[a[0]] = int(a[1]) / 8
				intTypes[a[0]] = op == opTypeInt
			}
		case opTypeVector:
			if len(a) >= 3 {
				sizes[a[0]] = sizes[a[1]] * int(a[2])
			}
		case opTypeImage:
			if len(a) >= 7 {
				imageDim[a[0]] = a[2]
				images[a[0]] = a[6]
				imageType[a[0]] = a[1]
			}
		case opTypeSampledImage:
			if len(a) >= 2 {
				sampled[a[0]] = a[1]
			}
		case opTypeStruct:
			if len(a) >= 1 {
				structs[a[0]] = append([]uint32(nil), a[1:]...)
			}
		case opTypePointer:
			if len(a) >= 3 {
				pointers[a[0]] = [2]uint32{a[1], a[2]}
			}
		case opVariable:
			if len(a) >= 3 {
				variables[a[1]] = variable{ptrType: a[0], storage: a[2]}
				varOrder = append(varOrder, a[1])
			}
		}
		i += n
	}
	const dimBuffer = 5
	var out []shaderBinding
	push := 0
	for _, id := range varOrder {
		v := variables[id]
		ptr, ok := pointers[v.ptrType]
		if !ok {
			continue
		}
		pointee := ptr[1]
		if v.storage == scPushConstant {
			push = -1
			if members, ok := structs[pointee]; ok {
				push = 0
				for m, t := range members {
					s, ok := sizes[t]
					off, ok2 := offsets[pointee][uint32(m)]
					if !ok || !ok2 {
						push = -1
						break
					}
					if off+s > push {
						push = off + s
					}
				}
			}
			continue
		}
		b, hasBinding := binding[id]
		if !hasBinding {
			continue
		}
		sb := shaderBinding{set: set[id], binding: b, class: classOther}
		switch {
		case v.storage == scStorageBuffer || (v.storage == scUniform && bufferBlk[pointee]):
			sb.class = classStorageBuffer
			members := structs[pointee]
			sb.readOnly = len(members) > 0
			for m := range members {
				if !nonWrit[pointee][uint32(m)] {
					sb.readOnly = false
				}
			}
		case v.storage == scUniform:
			sb.class = classUniformBuffer
		case v.storage == scUniformConstant:
			img := pointee
			if im, ok := sampled[pointee]; ok {
				img = im
			}
			if imageDim[img] == dimBuffer {
				sb.intTexels = intTypes[imageType[img]]
				switch images[img] {
				case 1:
					sb.class = classUniformTexel
				case 2:
					sb.class = classStorageTexel
				}
			}
		}
		out = append(out, sb)
	}
	return out, push, nil
}

// checkShader compares a kernel's declaration with its SPIR-V.
func checkShader(k *Kernel) error {
	binds, push, err := reflectSPIRV(k.SPIRV)
	if err != nil {
		return fmt.Errorf("gpu: kernel %s: %v", k.Name, err)
	}
	for _, b := range binds {
		if b.set != 0 {
			return fmt.Errorf("gpu: kernel %s: the shader uses descriptor set %d; kernels use set 0 only", k.Name, b.set)
		}
		if int(b.binding) >= len(k.Bindings) {
			return fmt.Errorf("gpu: kernel %s: the shader uses binding %d but the kernel declares %d bindings",
				k.Name, b.binding, len(k.Bindings))
		}
		decl := k.Bindings[b.binding]
		if decl.class() != b.class {
			return fmt.Errorf("gpu: kernel %s: binding %d is %s in the shader but the kernel declares %s",
				k.Name, b.binding, b.class, decl.class())
		}
		if b.class == classUniformTexel && decl.uintTexels() != b.intTexels {
			want, got := "floats (samplerBuffer)", "floats (samplerBuffer)"
			if decl.uintTexels() {
				want = "unsigned integers (usamplerBuffer)"
			}
			if b.intTexels {
				got = "integers (usamplerBuffer)"
			}
			return fmt.Errorf("gpu: kernel %s: binding %d reads %s in the shader but the kernel declares a texel format of %s",
				k.Name, b.binding, got, want)
		}
		if decl == ReadOnly && !b.readOnly {
			return fmt.Errorf("gpu: kernel %s: binding %d is declared ReadOnly but the shader's buffer is not readonly", k.Name, b.binding)
		}
	}
	if push > 4*k.PushWords {
		return fmt.Errorf("gpu: kernel %s: the shader's push constants take %d bytes but the kernel declares %d words",
			k.Name, push, k.PushWords)
	}
	return nil
}
