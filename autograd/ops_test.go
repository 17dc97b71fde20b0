package autograd

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// Each op against a float64 reference, forward and backward (see checkOp).
// The kernels have their own exhaustive tests; these check the wiring:
// shapes, which gradients flow, accumulation, frozen inputs.

func TestLinearAndMatMul(t *testing.T) {
	for _, c := range []struct{ rows, in, out int }{{1, 1, 1}, {7, 33, 5}, {12, 16, 9}} {
		for _, grads := range [][2]bool{{true, true}, {true, false}, {false, true}} {
			t.Run(fmt.Sprintf("%v/%v", c, grads), func(t *testing.T) {
				checkOp(t, 3, 1e-10, []opInput{{shape: []int{c.rows, c.in}, grad: grads[0]}, {shape: []int{c.out, c.in}, grad: grads[1]}},
					func(e *Engine, x []*Tensor) *Tensor { return Linear(x[0], x[1]) },
					func(x [][]float64) []float64 {
						y := make([]float64, c.rows*c.out)
						kernels.MatMulRef(y, x[0], x[1], kernels.MatMulParams{M: c.rows, N: c.out, K: c.in, TransB: true, Alpha: 1}, nil)
						return y
					})
			})
		}
	}
	// Batched attention-style product with a transposed right operand.
	B, M, K, N := 3, 5, 4, 6
	checkOp(t, 4, 1e-10, []opInput{{shape: []int{B, M, K}, grad: true}, {shape: []int{B, N, K}, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor { return MatMul(x[0], x[1], false, true) },
		func(x [][]float64) []float64 {
			y := make([]float64, B*M*N)
			kernels.MatMulRef(y, x[0], x[1], kernels.MatMulParams{M: M, N: N, K: K, TransB: true, Batch: B,
				StrideA: int64(M * K), StrideB: int64(N * K), StrideC: int64(M * N), Alpha: 1}, nil)
			return y
		})
}

func TestNorms(t *testing.T) {
	rows, C := 5, 33
	for _, g := range [][2]bool{{true, true}, {true, false}, {false, true}} {
		checkOp(t, 5, 1e-10, []opInput{{shape: []int{rows, C}, grad: g[0]}, {shape: []int{C}, grad: g[1]}},
			func(e *Engine, x []*Tensor) *Tensor { return RMSNorm(x[0], x[1], 1e-6) },
			func(x [][]float64) []float64 {
				y := make([]float64, rows*C)
				kernels.RMSNormRef(y, nil, x[0], x[1], rows, C, 1e-6)
				return y
			})
	}
	checkOp(t, 6, 1e-10, []opInput{{shape: []int{rows, C}, grad: true}, {shape: []int{C}, grad: true}, {shape: []int{C}, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor { return LayerNorm(x[0], x[1], x[2], 1e-5) },
		func(x [][]float64) []float64 {
			y := make([]float64, rows*C)
			kernels.LayerNormRef(y, nil, nil, x[0], x[1], x[2], rows, C, 1e-5)
			return y
		})
}

func TestSoftmaxOp(t *testing.T) {
	B, H, Tq, Tk := 2, 3, 4, 5
	mask := make([]float64, B*Tk)
	mask[Tk-1] = -math.MaxFloat32 // batch 0 has one padded key
	for _, causal := range []bool{false, true} {
		checkOp(t, 7, 1e-10, []opInput{{shape: []int{B, H, Tq, Tk}, grad: true}, {shape: []int{H, Tq, Tk}, grad: true},
			{shape: []int{B, Tk}, data: mask}},
			func(e *Engine, x []*Tensor) *Tensor { return Softmax(x[0], x[1], x[2], causal) },
			func(x [][]float64) []float64 {
				y := make([]float64, B*H*Tq*Tk)
				kernels.SoftmaxRef(y, x[0], B, H, Tq, Tk, x[1], x[2], causal, 0)
				return y
			})
	}
}

func TestActivations(t *testing.T) {
	n := 129
	for name, f := range map[string]func(*Tensor) *Tensor{"relu": Relu, "gelu_new": GeluNew, "silu": SiLU} {
		act := map[string]kernels.Activation{"relu": kernels.ReLU, "gelu_new": kernels.GELUNew, "silu": kernels.SiLU}[name]
		t.Run(name, func(t *testing.T) {
			checkOp(t, 8, 1e-10, []opInput{{shape: []int{n}, grad: true}},
				func(e *Engine, x []*Tensor) *Tensor { return f(x[0]) },
				func(x [][]float64) []float64 {
					y := make([]float64, n)
					for i, v := range x[0] {
						y[i] = kernels.ActivationValue(act, v)
					}
					return y
				})
		})
	}
	for _, act := range []kernels.Activation{kernels.GELUNew, kernels.ReLU, kernels.SiLU} {
		for _, g := range [][2]bool{{true, true}, {true, false}, {false, true}} {
			checkOp(t, 9, 1e-10, []opInput{{shape: []int{3, 11}, grad: g[0]}, {shape: []int{3, 11}, grad: g[1]}},
				func(e *Engine, x []*Tensor) *Tensor { return Gated(x[0], x[1], act) },
				func(x [][]float64) []float64 {
					y := make([]float64, len(x[0]))
					for i := range y {
						y[i] = kernels.ActivationValue(act, x[0][i]) * x[1][i]
					}
					return y
				})
		}
	}
}

func TestArithOps(t *testing.T) {
	sh := []int{4, 7}
	checkOp(t, 10, 1e-12, []opInput{{shape: sh, grad: true}, {shape: sh, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor { return Mul(x[0], x[1]) },
		func(x [][]float64) []float64 {
			y := make([]float64, len(x[0]))
			for i := range y {
				y[i] = x[0][i] * x[1][i]
			}
			return y
		})
	checkOp(t, 11, 1e-12, []opInput{{shape: sh, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor { return Scale(x[0], -0.25) },
		func(x [][]float64) []float64 {
			y := make([]float64, len(x[0]))
			for i := range y {
				y[i] = -0.25 * x[0][i]
			}
			return y
		})
	checkOp(t, 12, 1e-12, []opInput{{shape: sh, grad: true}, {shape: []int{1}, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor { return ScaleBy(x[0], x[1]) },
		func(x [][]float64) []float64 {
			y := make([]float64, len(x[0]))
			for i := range y {
				y[i] = x[1][0] * x[0][i]
			}
			return y
		})
	checkOp(t, 13, 1e-12, []opInput{{shape: sh, grad: true}, {shape: []int{7}, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor { return AddRow(x[0], x[1]) },
		func(x [][]float64) []float64 {
			y := make([]float64, len(x[0]))
			for i := range y {
				y[i] = x[0][i] + x[1][i%7]
			}
			return y
		})
}

func TestLayoutOps(t *testing.T) {
	B, Ta, Tb, C := 2, 3, 4, 5
	checkOp(t, 14, 1e-12, []opInput{{shape: []int{B, Ta, C}, grad: true}, {shape: []int{B, Tb, C}, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor { return Concat(x[0], x[1], 1) },
		func(x [][]float64) []float64 {
			var y []float64
			for b := 0; b < B; b++ {
				y = append(y, x[0][b*Ta*C:(b+1)*Ta*C]...)
				y = append(y, x[1][b*Tb*C:(b+1)*Tb*C]...)
			}
			return y
		})
	checkOp(t, 15, 1e-12, []opInput{{shape: []int{B, Tb, C}, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor { return Slice(x[0], 1, 1, 2) },
		func(x [][]float64) []float64 {
			var y []float64
			for b := 0; b < B; b++ {
				y = append(y, x[0][(b*Tb+1)*C:(b*Tb+3)*C]...)
			}
			return y
		})
	checkOp(t, 16, 1e-12, []opInput{{shape: []int{Ta, C}, grad: true}, {shape: []int{B, Tb, C}, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor { return PrependRows(x[0], x[1]) },
		func(x [][]float64) []float64 {
			var y []float64
			for b := 0; b < B; b++ {
				y = append(y, x[0]...)
				y = append(y, x[1][b*Tb*C:(b+1)*Tb*C]...)
			}
			return y
		})
	// One prompt per row, on awkward shapes, with either input frozen.
	for _, c := range [][4]int{{2, 3, 4, 5}, {1, 1, 1, 1}, {7, 5, 3, 33}, {3, 7, 1, 4}} {
		B, Lp, L, C := c[0], c[1], c[2], c[3]
		for _, g := range [][2]bool{{true, true}, {true, false}, {false, true}} {
			t.Run(fmt.Sprintf("prepend_rows_per_row/%v/%v", c, g), func(t *testing.T) {
				checkOp(t, 22, 1e-12, []opInput{{shape: []int{B, Lp, C}, grad: g[0]}, {shape: []int{B, L, C}, grad: g[1]}},
					func(e *Engine, x []*Tensor) *Tensor { return PrependRows(x[0], x[1]) },
					func(x [][]float64) []float64 {
						return kernels.ConcatRef(x[0], x[1], B, Lp, L, C)
					})
			})
		}
	}
	H, D := 2, 3
	checkOp(t, 17, 1e-12, []opInput{{shape: []int{B, Tb, H * D}, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor {
			s := SplitHeads(x[0], H)
			m := MergeHeads(Scale(s, 2))
			return m
		},
		func(x [][]float64) []float64 {
			y := make([]float64, len(x[0]))
			for i := range y {
				y[i] = 2 * x[0][i]
			}
			return y
		})
}

func TestEmbeddingAndXent(t *testing.T) {
	V, C := 11, 6
	ids := []int32{3, 0, 3, 10, 7}
	e := newEngine(t)
	table := e.Param("table", reftest.F32s(reftest.Randn(newRNG(1), V*C, 1)), V, C)
	idt := e.FromInt32(ids, 5)
	emb := Embedding(table, idt)
	labels := e.FromInt32([]int32{2, -100, 5, 1, 0}, 5)
	loss := CrossEntropy(emb, labels)
	if err := e.Backward(loss); err != nil {
		t.Fatal(err)
	}
	tab, _ := table.Float32s()
	got, _ := table.Grad().Float32s()
	// Reference: loss = mean over non-ignored rows of CE(table[ids[i]], label).
	lab := []int{2, -100, 5, 1, 0}
	x := reftest.F64s(tab)
	ref := func(v []float64) float64 {
		s, cnt := 0.0, 0
		for i, id := range ids {
			if lab[i] < 0 {
				continue
			}
			row := v[int(id)*C : int(id+1)*C]
			m := row[0]
			for _, r := range row {
				m = math.Max(m, r)
			}
			z := 0.0
			for _, r := range row {
				z += math.Exp(r - m)
			}
			s += m + math.Log(z) - row[lab[i]]
			cnt++
		}
		return s / float64(cnt)
	}
	lv, _ := loss.Item()
	if d := math.Abs(float64(lv) - ref(x)); d > 1e-5 {
		t.Errorf("loss %v, want %v", lv, ref(x))
	}
	reftest.CheckNMSE(t, "table gradient", reftest.F64s(got), reftest.NumGrad(ref, x, 1e-6), 1e-9)
	for _, x := range []*Tensor{table, idt, emb, labels, loss} {
		x.Release()
	}
}

func TestReduceOps(t *testing.T) {
	sh := []int{3, 4, 5}
	checkOp(t, 18, 1e-12, []opInput{{shape: sh, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor { return Mean(x[0]) },
		func(x [][]float64) []float64 {
			s := 0.0
			for _, v := range x[0] {
				s += v
			}
			return []float64{s / float64(len(x[0]))}
		})
	checkOp(t, 19, 1e-12, []opInput{{shape: sh, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor { return SumAxis(x[0], 1) },
		func(x [][]float64) []float64 {
			y := make([]float64, 15)
			kernels.SumRef(y, x[0], 3, 4, 5, 1)
			return y
		})
	mask := []float64{1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0}
	checkOp(t, 20, 1e-12, []opInput{{shape: sh, grad: true}, {shape: []int{3, 4}, data: mask}},
		func(e *Engine, x []*Tensor) *Tensor { return MaxPool(x[0], x[1]) },
		func(x [][]float64) []float64 {
			y := make([]float64, 15)
			kernels.MaxPoolRef(y, make([]int32, 15), x[0], x[1], 3, 4, 5)
			return y
		})
	checkOp(t, 21, 1e-10, []opInput{{shape: []int{4, 9}, grad: true}, {shape: []int{4, 9}, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor { return Cosine(x[0], x[1]) },
		func(x [][]float64) []float64 {
			y := make([]float64, 4)
			kernels.CosineRef(y, x[0], x[1], 4, 9)
			return y
		})
}

// SoftmaxDropout against dropout(softmax) in float64 with the same mask,
// forward and backward (scores and bias).
func TestSoftmaxDropoutOp(t *testing.T) {
	B, H, Tq, Tk := 2, 3, 4, 7
	mask := make([]float64, B*Tk)
	mask[2*Tk-1] = -math.MaxFloat32 // batch 1 has one padded key
	const p, seed, site = 0.25, 9, 4
	for _, causal := range []bool{false, true} {
		checkOp(t, 8, 1e-10, []opInput{{shape: []int{B, H, Tq, Tk}, grad: true}, {shape: []int{H, Tq, Tk}, grad: true},
			{shape: []int{B, Tk}, data: mask}},
			func(e *Engine, x []*Tensor) *Tensor {
				return SoftmaxDropout(x[0], x[1], x[2], causal, p, e.NewSeed(seed), site)
			},
			func(x [][]float64) []float64 {
				y := make([]float64, B*H*Tq*Tk)
				kernels.SoftmaxRef(y, x[0], B, H, Tq, Tk, x[1], x[2], causal, 0)
				kernels.DropoutRef(y, y, p, seed, site)
				return y
			})
	}
}

// The fused op draws Dropout's mask: outputs and gradients equal those of
// Dropout(Softmax(x)), also when the seed advances before backward.
func TestSoftmaxDropoutMatchesUnfused(t *testing.T) {
	e := newEngine(t)
	const B, H, T = 2, 2, 33
	xv := reftest.F32s(reftest.Randn(newRNG(3), B*H*T*T, 2))
	var ys, gs [2][]float32
	for k := 0; k < 2; k++ {
		seed := e.NewSeed(11)
		x := e.Param("x", xv, B, H, T, T)
		var y *Tensor
		if k == 0 {
			s := Softmax(x, nil, nil, true)
			y = Dropout(s, 0.4, seed, 2)
			s.Release()
		} else {
			y = SoftmaxDropout(x, nil, nil, true, 0.4, seed, 2)
		}
		AdvanceSeed(seed)
		w := e.FromFloat32(reftest.F32s(reftest.Randn(newRNG(4), B*H*T*T, 1)), B, H, T, T)
		if err := e.BackwardFrom(y, w); err != nil {
			t.Fatal(err)
		}
		ys[k], _ = y.Float32s()
		gs[k], _ = x.Grad().Float32s()
		for _, v := range []*Tensor{seed, x, y, w} {
			v.Release()
		}
	}
	// Two fp32 computations of the same values: a few ulps of the scale.
	reftest.CheckScaled(t, "y", reftest.F64s(ys[1]), reftest.F64s(ys[0]), 2e-6)
	reftest.CheckScaled(t, "x's gradient", reftest.F64s(gs[1]), reftest.F64s(gs[0]), 2e-6)
}

// Dropout's backward uses the mask of its forward even when the seed has
// moved on in between.
func TestDropoutOp(t *testing.T) {
	e := newEngine(t)
	seed := e.NewSeed(5)
	x := e.Param("x", reftest.F32s(reftest.Randn(newRNG(2), 1000, 1)), 1000)
	y := Dropout(x, 0.3, seed, 1)
	AdvanceSeed(seed)
	w := e.Full(1, 1000)
	if err := e.BackwardFrom(y, w); err != nil {
		t.Fatal(err)
	}
	yv, _ := y.Float32s()
	xv, _ := x.Float32s()
	g, _ := x.Grad().Float32s()
	for i := range yv {
		want := float32(0)
		if yv[i] != 0 {
			want = 1 / 0.7
			if d := math.Abs(float64(yv[i] - xv[i]/0.7)); d > 1e-5 {
				t.Fatalf("y[%d] = %v, x = %v", i, yv[i], xv[i])
			}
		}
		if math.Abs(float64(g[i]-want)) > 1e-5 {
			t.Fatalf("grad[%d] = %v, want %v", i, g[i], want)
		}
	}
	for _, v := range []*Tensor{seed, x, y, w} {
		v.Release()
	}
}

// A dropout seed must be one int32: otherwise an error naming the op.
func TestDropoutBadSeed(t *testing.T) {
	for name, f := range map[string]func(x, seed *Tensor) *Tensor{
		"dropout":         func(x, seed *Tensor) *Tensor { return Dropout(x, 0.1, seed, 1) },
		"softmax_dropout": func(x, seed *Tensor) *Tensor { return SoftmaxDropout(x, nil, nil, false, 0.1, seed, 1) },
	} {
		e := newEngine(t)
		x := e.Zeros(1, 1, 2, 3)
		bad := e.Zeros(2)
		f(x, bad)
		if err := e.Err(); err == nil || !strings.Contains(err.Error(), name+": seed") || !strings.Contains(err.Error(), "one int32") {
			t.Errorf("%s: err = %v", name, err)
		}
		e.ClearErr()
		x.Release()
		bad.Release()
	}
}
