package kernels

import (
	"fmt"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// Helpers shared by the row-wise kernels of the transformer layer (norms,
// softmax, activations, embedding, relative position bias); their shaders
// include shaders/norm_rows.glsl.
//
// Inputs are bound as RGBA32F texel views at any element offset (the shader
// fetches the one or two texels holding four consecutive elements), outputs
// as storage buffers written four elements at a time where aligned. Row
// kernels give each row to one subgroup and stride over the rows, so they
// need subgroup arithmetic.

// tlOperand is one Mem an op reads or writes, with its name and element count
// for validation.
type tlOperand struct {
	name string
	m    Mem
	n    int64
}

// tlCheck validates every operand (nil, freed, too short, another
// device) and returns their device. shape describes the op's shapes for the
// error messages, e.g. "x is 3248x1024".
func tlCheck(op, shape string, ops ...tlOperand) (*gpu.Device, error) {
	var d *gpu.Device
	var first string
	for _, o := range ops {
		if err := o.m.check(op, o.name, o.n); err != nil {
			return nil, fmt.Errorf("%w (%s)", err, shape)
		}
		if d == nil {
			d, first = o.m.Buf.Device(), o.name
		} else if o.m.Buf.Device() != d {
			return nil, fmt.Errorf("%s: %s and %s are on different devices (%s)", op, first, o.name, shape)
		}
	}
	if d == nil {
		return nil, fmt.Errorf("%s: no operands (%s)", op, shape)
	}
	return d, nil
}

// tlDims formats a shape as "3248x1024".
func tlDims(v ...int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, "x")
}

// tlPositive returns an error unless every dimension is at least 1.
func tlPositive(op string, names string, v ...int) error {
	for _, x := range v {
		if x < 1 {
			return fmt.Errorf("%s: %s must be positive, got %s", op, names, tlDims(v...))
		}
	}
	return nil
}

// tlView binds n elements of m as an RGBA32F texel view; shift is the element
// index of m.Off inside it (any value: the shaders handle misalignment).
func tlView(d *gpu.Device, m Mem, n int64) (gpu.Binding, uint32) {
	if n < 1 {
		n = 1
	}
	return texelSpan(d, m, n, 4)
}

// tlOut binds n elements of m as a storage buffer for writing.
func tlOut(d *gpu.Device, m Mem, n int64) (gpu.Binding, uint32) {
	if n < 1 {
		n = 1
	}
	return span(d, m, n)
}

// tlViewLimit is the most elements one binding of a row kernel may span:
// within maxStorageBufferRange for storage bindings and within
// maxTexelBufferElements texels for texel views, with room for the
// alignment shift.
func tlViewLimit(d *gpu.Device) int64 {
	lim := maxElems(d)
	if t := 4*int64(d.Info().MaxTexelBufferElements) - 64; t < lim {
		lim = t
	}
	return lim
}

// tlRowChunks calls f for consecutive row ranges [lo, hi) of at most
// viewLimit/rowLen rows, so that no binding exceeds the device's limits.
func tlRowChunks(op string, d *gpu.Device, rows, rowLen int64, f func(lo, hi int64) error) error {
	return tlRowChunksMax(op, d, rows, rowLen, rows, f)
}

// tlMaxLoop bounds the iterations of any loop in these shaders: lavapipe
// ends loops after 65535 iterations, so kernels whose invocations loop over
// rows or ids split the work into dispatches of at most this many.
const tlMaxLoop = 1 << 15

// tlRowChunksMax is tlRowChunks with at most maxRows rows per chunk.
func tlRowChunksMax(op string, d *gpu.Device, rows, rowLen, maxRows int64, f func(lo, hi int64) error) error {
	// A subgroup walks a row in steps of four elements per lane.
	if sg := int64(d.Info().SubgroupSize); sg > 0 && rowLen > 4*sg*tlMaxLoop {
		return fmt.Errorf("%s: rows of %d elements are longer than the row kernels handle on %s (%d)", op, rowLen, d, 4*sg*tlMaxLoop)
	}
	per := tlViewLimit(d) / rowLen
	if per > maxRows {
		per = maxRows
	}
	if per < 1 {
		return fmt.Errorf("%s: a row of %d elements exceeds what one binding may hold on %s (%d elements)", op, rowLen, d, tlViewLimit(d))
	}
	return chunks(rows, per, f)
}

// tlRowSetup returns the workgroup size of the row kernels on d and the
// number of rows one workgroup covers (one row per subgroup), or an error if
// the device lacks subgroup arithmetic in compute shaders.
func tlRowSetup(op string, d *gpu.Device) (wg uint32, perWG int64, err error) {
	info := d.Info()
	if !info.SubgroupInCompute || info.SubgroupOps&(gpu.SubgroupBasic|gpu.SubgroupArithmetic) != gpu.SubgroupBasic|gpu.SubgroupArithmetic {
		return 0, 0, fmt.Errorf("%s: %s lacks subgroup arithmetic in compute shaders", op, d)
	}
	sg := info.SubgroupSize
	if sg == 0 {
		sg = 1
	}
	// Four rows per workgroup: enough workgroups to spread over the cores
	// or SMs for T5's row counts, few enough to keep scheduling cheap.
	wg = 4 * sg
	for wg > sg && wg > info.MaxWorkgroupInvocations {
		wg -= sg
	}
	return wg, int64(wg / sg), nil
}

// tlRowGrid covers rows with perWG rows per workgroup; the shaders stride over
// rows, so the count is capped at the device's limit.
func tlRowGrid(d *gpu.Device, rows, perWG int64) [3]uint32 {
	g := (rows + perWG - 1) / perWG
	if max := int64(d.Info().MaxWorkgroupCount[0]); g > max {
		g = max
	}
	if g < 1 {
		g = 1
	}
	return [3]uint32{uint32(g), 1, 1}
}

// tlGroups4 is the number of output-aligned groups of four elements that cover
// n elements starting at element shift s of a binding.
func tlGroups4(s uint32, n int64) int64 { return (int64(s&3) + n + 3) / 4 }

// tlBit is 1 for true, for boolean specialization constants.
func tlBit(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
