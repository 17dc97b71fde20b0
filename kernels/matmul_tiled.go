package kernels

import (
	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// The tiled variant of MatMul: storage buffers and shared-memory tiles, the
// fast path on GPUs (shaders/matmul_tiled.comp), and the same source compiled
// with -DW16 for a 16-bit B, read as 32-bit words of two values.
var (
	matmulTiledKernel    = kernel("matmul_tiled", 15, gpu.ReadOnly, gpu.ReadOnly, gpu.ReadOnly, gpu.ReadWrite)
	matmulTiledW16Kernel = kernel("matmul_tiled_w16", 15, gpu.ReadOnly, gpu.ReadOnly, gpu.ReadOnly, gpu.ReadWrite)
)

// mmTiledCfg is a tile shape of the tiled variant: a workgroup of wgX × wgY
// invocations computes a (wgY·tm) × (wgX·tn) tile of C, stepping bk values
// of K at a time.
type mmTiledCfg struct {
	wgX, wgY, tm, tn, bk int
}

func (c mmTiledCfg) bm() int { return c.wgY * c.tm }
func (c mmTiledCfg) bn() int { return c.wgX * c.tn }

// shared is the shared memory the shape needs, in bytes.
func (c mmTiledCfg) shared() int { return 4 * c.bk * (c.bm() + 1 + c.bn() + 1) }

// mmTiledTable lists the tile shapes from large to small. A shape is used
// when the device can run it and the product has enough tiles of that size
// to keep a GPU busy; the last one always applies.
var mmTiledTable = []struct {
	cfg      mmTiledCfg
	minTiles int
}{
	{mmTiledCfg{wgX: 16, wgY: 16, tm: 8, tn: 8, bk: 16}, 256}, // 128×128, 16.5 KB shared
	{mmTiledCfg{wgX: 16, wgY: 16, tm: 4, tn: 4, bk: 16}, 128}, // 64×64
	{mmTiledCfg{wgX: 16, wgY: 16, tm: 2, tn: 2, bk: 16}, 0},   // 32×32
}

// matmulTiledOverride replaces the table (tests use small tiles).
var matmulTiledOverride *mmTiledCfg

// mmTiledConfig picks the tile shape for d and p from mmTiledTable: the
// largest that fits the device's shared memory and workgroup size, whose
// workgroup is a whole number of subgroups, and that yields enough tiles.
func mmTiledConfig(d *gpu.Device, p *MatMulParams) mmTiledCfg {
	if o := matmulTiledOverride; o != nil {
		return *o
	}
	info := d.Info()
	batch := p.Batch
	if batch < 1 {
		batch = 1
	}
	last := mmTiledTable[len(mmTiledTable)-1].cfg
	for _, e := range mmTiledTable {
		c := e.cfg
		threads := c.wgX * c.wgY
		if c.shared() > int(info.MaxSharedMemory) || threads > int(info.MaxWorkgroupInvocations) {
			continue
		}
		if sg := int(info.SubgroupSize); sg > 0 && threads%sg != 0 {
			continue
		}
		tiles := ((p.M + c.bm() - 1) / c.bm()) * ((p.N + c.bn() - 1) / c.bn()) * batch
		if tiles >= e.minTiles {
			return c
		}
		last = c
	}
	return last
}

func (cfg mmTiledCfg) limits(d *gpu.Device, _ *mmProblem) func(*mmProblem) (string, error) {
	info, max := d.Info(), maxElems(d)
	return func(q *mmProblem) (string, error) {
		return q.splitFor(info, max, maxElemsOf(d, q.b.Type), max, cfg.bm(), cfg.bn()), nil
	}
}

func (pr *mmProblem) dispatchTiled(r *gpu.Recorder, d *gpu.Device, cfg mmTiledCfg) error {
	const op = "matmul"
	p := &pr.p
	hasBias := pr.bias.Buf != nil
	k := matmulTiledKernel
	spec := []uint32{uint32(cfg.wgX), uint32(cfg.wgY), uint32(cfg.tm), uint32(cfg.tn),
		uint32(cfg.bk), mmBool(p.TransA), mmBool(p.TransB), mmBool(hasBias), mmBool(p.Beta != 0)}
	if pr.b.Type.Is16() {
		k = matmulTiledW16Kernel
		spec = append(spec, mmBool(pr.b.Type == ElemBF16))
	}
	pipe, err := pipeline(d, op, k, spec...)
	if err != nil {
		return err
	}
	ea, eb, ec := pr.extents()
	ab, ao := mmSpan(d, pr.a, ea)
	bb, bo := mmSpan(d, pr.b, eb)
	cb, co := span(d, pr.c, ec)
	biasB, biasO := mmSpan(d, pr.bias, int64(p.N))
	if !hasBias {
		biasB, biasO = mmSpan(d, pr.a, 0)
	}
	push := []uint32{uint32(p.M), uint32(p.N), uint32(p.K), uint32(p.LDA), uint32(p.LDB), uint32(p.LDC),
		ao, bo, co, biasO, uint32(p.StrideA), uint32(p.StrideB), uint32(p.StrideC), f32(p.Alpha), f32(p.Beta)}
	groups := [3]uint32{uint32((p.N + cfg.bn() - 1) / cfg.bn()), uint32((p.M + cfg.bm() - 1) / cfg.bm()), uint32(p.Batch)}
	return r.Dispatch(pipe, groups, push, ab, bb, biasB, cb)
}

// mmSpan binds n elements of m as a storage buffer, or the buffer's first
// element when n is 0 (nothing is read).
func mmSpan(d *gpu.Device, m Mem, n int64) (gpu.Binding, uint32) {
	if n == 0 {
		b, _ := span(d, Mem{Buf: m.Buf, Type: m.Type}, 1)
		return b, 0
	}
	return span(d, m, n)
}

func mmBool(v bool) uint32 {
	if v {
		return 1
	}
	return 0
}
