package autograd

import (
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// WriteAt against a host copy, along every axis and at both ends.
func TestWriteAt(t *testing.T) {
	shape := []int{2, 3, 7, 5}
	for axis := 0; axis < len(shape); axis++ {
		for _, at := range [][2]int{{0, 1}, {shape[axis] - 1, 1}, {1, shape[axis] - 1}} {
			start, n := at[0], at[1]
			e := newEngine(t)
			rng := newRNG(uint64(10*axis + start))
			dv := reftest.F64s(reftest.F32s(reftest.Randn(rng, numel(shape), 1)))
			sshape := append([]int(nil), shape...)
			sshape[axis] = n
			sv := reftest.F64s(reftest.F32s(reftest.Randn(rng, numel(sshape), 1)))
			dst := e.FromFloat32(reftest.F32s(dv), shape...)
			src := e.FromFloat32(reftest.F32s(sv), sshape...)
			WriteAt(dst, src, axis, start)
			got, err := dst.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			outer, T, inner := seqView(shape, axis)
			want := append([]float64(nil), dv...)
			for o := int64(0); o < outer; o++ {
				for r := int64(0); r < int64(n); r++ {
					for i := int64(0); i < inner; i++ {
						want[(o*T+int64(start)+r)*inner+i] = sv[(o*int64(n)+r)*inner+i]
					}
				}
			}
			reftest.CheckNMSE(t, "dst", reftest.F64s(got), want, 0)
			dst.Release()
			src.Release()
		}
	}
}

// Misfitting operands and operands that would need a gradient are errors.
func TestWriteAtErrors(t *testing.T) {
	e := newEngine(t)
	dst := e.Zeros(2, 4, 3)
	defer dst.Release()
	for _, c := range []struct {
		name        string
		shape       []int
		axis, start int
		grad        bool
		want        string
	}{
		{"other axis differs", []int{2, 1, 2}, 1, 0, false, "into"},
		{"past the end", []int{2, 2, 3}, 1, 3, false, "into"},
		{"negative start", []int{2, 1, 3}, 1, -1, false, "into"},
		{"rank", []int{2, 3}, 1, 0, false, "into"},
		{"gradient", []int{2, 1, 3}, 1, 0, true, "no gradient"},
	} {
		src := e.Zeros(c.shape...).SetRequiresGrad(c.grad)
		WriteAt(dst, src, c.axis, c.start)
		if err := e.Err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.name, err)
		}
		e.ClearErr()
		src.Release()
	}
	// Under NoGrad the same write is fine.
	src := e.Zeros(2, 1, 3).SetRequiresGrad(true)
	func() {
		defer e.NoGrad()()
		WriteAt(dst, src, 1, 2)
	}()
	if err := e.Err(); err != nil {
		t.Errorf("under NoGrad: %v", err)
	}
	src.Release()
}
