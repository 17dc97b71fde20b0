package kernels

import (
	"fmt"
	"math"
	"os"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// MatMulParams describes C = Alpha·op(A)·op(B) + Beta·C (+ bias[n] added to
// every row when a bias is given), batched: for each batch index z, A, B and
// C start at z*StrideA, z*StrideB, z*StrideC elements.
//
// op(A) is M×K: A is stored M×K row-major with leading dimension LDA ≥ K, or,
// when TransA, K×M with LDA ≥ M. op(B) is K×N: B is stored K×N with LDB ≥ N,
// or, when TransB, N×K with LDB ≥ K. C is M×N with LDC ≥ N.
//
// Zero LDx means contiguous (the minimum); zero StrideX with Batch > 1 means
// the operand is shared by all batches (not allowed for C, whose batches
// must not overlap).
type MatMulParams struct {
	M, N, K                   int
	TransA, TransB            bool
	Batch                     int // 0 or 1: one product
	LDA, LDB, LDC             int
	StrideA, StrideB, StrideC int64
	// Alpha 0 means 0 (callers pass 1 explicitly). Beta 0 overwrites C
	// without reading it, so C may hold anything, NaN included.
	Alpha, Beta float32
}

func (p MatMulParams) String() string {
	ta, tb := "", ""
	if p.TransA {
		ta = "ᵀ"
	}
	if p.TransB {
		tb = "ᵀ"
	}
	s := fmt.Sprintf("M=%d N=%d K=%d A%s B%s", p.M, p.N, p.K, ta, tb)
	if p.Batch > 1 {
		s += fmt.Sprintf(" batch=%d", p.Batch)
	}
	return s
}

// Kernels of the two variants. The texel variant binds A and B as RGBA32F
// views where rows start on a 4-element boundary and as float views
// otherwise (one shader, four declarations); with a 16-bit B
// (matmul_texel_w16, the same source compiled with -DW16) B is bound as
// RGBA16UI or R16UI texels.
var (
	matmulTexel44 = kernel("matmul_texel", 17, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelR32F, gpu.ReadWrite)
	matmulTexel41 = kernel("matmul_texel", 17, gpu.TexelRGBA32F, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite)
	matmulTexel14 = kernel("matmul_texel", 17, gpu.TexelR32F, gpu.TexelRGBA32F, gpu.TexelR32F, gpu.ReadWrite)
	matmulTexel11 = kernel("matmul_texel", 17, gpu.TexelR32F, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite)

	matmulTexelW16x44 = kernel("matmul_texel_w16", 17, gpu.TexelRGBA32F, gpu.TexelRGBA16UI, gpu.TexelR32F, gpu.ReadWrite)
	matmulTexelW16x41 = kernel("matmul_texel_w16", 17, gpu.TexelRGBA32F, gpu.TexelR16UI, gpu.TexelR32F, gpu.ReadWrite)
	matmulTexelW16x14 = kernel("matmul_texel_w16", 17, gpu.TexelR32F, gpu.TexelRGBA16UI, gpu.TexelR32F, gpu.ReadWrite)
	matmulTexelW16x11 = kernel("matmul_texel_w16", 17, gpu.TexelR32F, gpu.TexelR16UI, gpu.TexelR32F, gpu.ReadWrite)
)

// matmulVariant names a matmul implementation.
type matmulVariant int

const (
	matmulAuto  matmulVariant = iota
	matmulTexel               // register-blocked, texel-buffer reads, no shared memory (CPU devices)
	matmulTiled               // storage buffers, shared-memory tiles (GPUs)
)

func (v matmulVariant) String() string {
	switch v {
	case matmulTexel:
		return "texel"
	case matmulTiled:
		return "tiled"
	}
	return "auto"
}

// MatMul records C = Alpha·op(A)·op(B) + Beta·C (+ bias) as described by p.
// c, a and b hold the (batched) matrices at their offsets; bias is (N,), or
// bias.Buf == nil for none. C must not overlap A, B or the bias.
//
// Two implementations exist, chosen per device: on CPU devices (lavapipe) a
// register-blocked shader that reads A and B through texel buffers, without
// shared memory; elsewhere a shader with shared-memory tiles over storage
// buffers. Tile sizes come from a small table keyed by the shape and the
// device's subgroup size and shared memory. The environment variable
// SHLPT_VK_MATMUL=texel or SHLPT_VK_MATMUL=tiled forces one of them on any
// device (for debugging and comparison).
//
// Operands too large for one binding (maxStorageBufferRange) are split into
// pieces along M, N, K or the batch, recorded as several dispatches.
//
// B may hold 16-bit floats (b.Type ElemF16 or ElemBF16: frozen weights),
// widened to fp32 as they are read; the products accumulate in fp32. A, C
// and the bias are fp32. The texel variant reads a 16-bit B through 16-bit
// integer texels where the device supports them (DeviceInfo.Texel16), and
// the tiled variant is used where it does not; neither needs 16-bit storage
// or fp16 arithmetic.
func MatMul(r *gpu.Recorder, c, a, b Mem, p MatMulParams, bias Mem) error {
	return matmul(r, c, a, b, p, bias, matmulAuto)
}

// mmProblem is one (piece of a) matrix product with normalized parameters:
// leading dimensions filled in, Batch ≥ 1.
type mmProblem struct {
	c, a, b, bias Mem
	p             MatMulParams
}

// aDims and bDims are the shapes (rows, columns) of the stored A and B.
func (p *MatMulParams) aDims() (rows, cols int) {
	if p.TransA {
		return p.K, p.M
	}
	return p.M, p.K
}

func (p *MatMulParams) bDims() (rows, cols int) {
	if p.TransB {
		return p.N, p.K
	}
	return p.K, p.N
}

// mmExtent is the number of elements spanned by batch matrices of
// rows×cols with leading dimension ld, stride elements apart.
func mmExtent(batch, rows, cols, ld int, stride int64) int64 {
	if rows == 0 || cols == 0 || batch == 0 {
		return 0
	}
	return int64(batch-1)*stride + int64(rows-1)*int64(ld) + int64(cols)
}

func (pr *mmProblem) extents() (a, b, c int64) {
	p := &pr.p
	ar, ac := p.aDims()
	br, bc := p.bDims()
	return mmExtent(p.Batch, ar, ac, p.LDA, p.StrideA), mmExtent(p.Batch, br, bc, p.LDB, p.StrideB),
		mmExtent(p.Batch, p.M, p.N, p.LDC, p.StrideC)
}

func matmul(r *gpu.Recorder, c, a, b Mem, p MatMulParams, bias Mem, v matmulVariant) error {
	pr, err := matmulCheck(c, a, b, p, bias)
	if err != nil {
		return err
	}
	if pr.p.M == 0 || pr.p.N == 0 {
		return nil
	}
	d := c.Buf.Device()
	if v == matmulAuto {
		if v, err = mmChooseVariant(d); err != nil {
			return err
		}
	}
	if v == matmulTexel && pr.b.Type.Is16() && !mmTexel16(d) {
		v = matmulTiled // 16-bit texels unsupported: read B as 32-bit words
	}
	return pr.record(r, d, v)
}

// mmTexel16 reports whether the texel variant can read a 16-bit B on d
// (tests replace it to take the fallback).
var mmTexel16 = func(d *gpu.Device) bool { return d.Info().Texel16 }

// MatMulEnv names the environment variable that forces a matmul variant.
const MatMulEnv = "SHLPT_VK_MATMUL"

// mmChooseVariant picks the implementation for d: SHLPT_VK_MATMUL if
// set, else texel on CPU devices and tiled elsewhere. Any other value of
// the variable is an error naming it.
func mmChooseVariant(d *gpu.Device) (matmulVariant, error) {
	switch v := os.Getenv(MatMulEnv); v {
	case "texel":
		return matmulTexel, nil
	case "tiled":
		return matmulTiled, nil
	case "":
	default:
		return matmulAuto, fmt.Errorf("matmul: %s=%q: accepted values are texel and tiled (or unset: chosen per device)", MatMulEnv, v)
	}
	if d.Info().Type == gpu.TypeCPU {
		return matmulTexel, nil
	}
	return matmulTiled, nil
}

// matmulNormalize fills in the defaults of p (contiguous leading
// dimensions, one batch) and checks the sizes.
func matmulNormalize(p MatMulParams) (MatMulParams, error) {
	const op = "matmul"
	if p.M < 0 || p.N < 0 || p.K < 0 || p.Batch < 0 {
		return p, fmt.Errorf("%s: negative size in %v", op, p)
	}
	if p.Batch == 0 {
		p.Batch = 1
	}
	_, ac := p.aDims()
	_, bc := p.bDims()
	for _, ld := range []struct {
		name string
		v    *int
		min  int
	}{{"LDA", &p.LDA, ac}, {"LDB", &p.LDB, bc}, {"LDC", &p.LDC, p.N}} {
		if *ld.v == 0 {
			*ld.v = ld.min
		}
		if *ld.v < ld.min {
			return p, fmt.Errorf("%s: %s %d is less than the row length %d (%v)", op, ld.name, *ld.v, ld.min, p)
		}
	}
	if p.StrideA < 0 || p.StrideB < 0 || p.StrideC < 0 {
		return p, fmt.Errorf("%s: negative batch stride (%v)", op, p)
	}
	for _, v := range []int64{int64(p.M), int64(p.N), int64(p.K), int64(p.LDA), int64(p.LDB), int64(p.LDC), p.StrideA, p.StrideB, p.StrideC} {
		if v > math.MaxInt32 {
			return p, fmt.Errorf("%s: size or stride %d too large (%v)", op, v, p)
		}
	}
	return p, nil
}

// matmulCheck validates the operands and returns the normalized problem.
func matmulCheck(c, a, b Mem, p MatMulParams, bias Mem) (*mmProblem, error) {
	const op = "matmul"
	p, err := matmulNormalize(p)
	if err != nil {
		return nil, err
	}
	ar, ac := p.aDims()
	br, bc := p.bDims()
	pr := &mmProblem{c: c, a: a, b: b, bias: bias, p: p}
	ea, eb, ec := pr.extents()
	if err := a.check(op, fmt.Sprintf("a (%dx%d, lda %d)", ar, ac, p.LDA), ea); err != nil {
		return nil, err
	}
	if err := b.check16(op, fmt.Sprintf("b (%dx%d, ldb %d)", br, bc, p.LDB), eb); err != nil {
		return nil, err
	}
	if err := c.check(op, fmt.Sprintf("c (%dx%d, ldc %d)", p.M, p.N, p.LDC), ec); err != nil {
		return nil, err
	}
	d := c.Buf.Device()
	if a.Buf.Device() != d || b.Buf.Device() != d {
		return nil, fmt.Errorf("%s: operands on different devices (%v)", op, p)
	}
	if p.Batch > 1 && p.M > 0 && p.N > 0 && p.StrideC < mmExtent(1, p.M, p.N, p.LDC, 0) {
		return nil, fmt.Errorf("%s: batches of c overlap: stride %d < %d elements per %dx%d matrix (%v)",
			op, p.StrideC, mmExtent(1, p.M, p.N, p.LDC, 0), p.M, p.N, p)
	}
	overlaps := func(x Mem, nx int64, y Mem, ny int64) bool {
		return x.Buf == y.Buf && nx > 0 && ny > 0 && x.Off < y.Off+ny && y.Off < x.Off+nx
	}
	if overlaps(c, ec, a, ea) {
		return nil, fmt.Errorf("%s: c overlaps a (%v)", op, p)
	}
	if overlaps(c, ec, b, eb) {
		return nil, fmt.Errorf("%s: c overlaps b (%v)", op, p)
	}
	if bias.Buf != nil {
		if err := bias.check(op, fmt.Sprintf("bias (%d)", p.N), int64(p.N)); err != nil {
			return nil, err
		}
		if bias.Buf.Device() != d {
			return nil, fmt.Errorf("%s: bias on a different device", op)
		}
		if overlaps(c, ec, bias, int64(p.N)) {
			return nil, fmt.Errorf("%s: c overlaps the bias (%v)", op, p)
		}
	}
	return pr, nil
}

// record dispatches pr with variant v, splitting it into pieces whose
// bindings and grids fit the device.
func (pr *mmProblem) record(r *gpu.Recorder, d *gpu.Device, v matmulVariant) error {
	switch v {
	case matmulTexel:
		vecA, vecB, vecC := pr.texelVec(4)
		cfg := mmTexelConfig(d, &pr.p, vecA, vecB, vecC)
		return pr.split(d, cfg.limits(d, pr), func(q *mmProblem) error { return q.dispatchTexel(r, d, cfg) })
	case matmulTiled:
		cfg := mmTiledConfig(d, &pr.p)
		return pr.split(d, cfg.limits(d, pr), func(q *mmProblem) error { return q.dispatchTiled(r, d, cfg) })
	}
	return fmt.Errorf("matmul: unknown variant %d", v)
}

// split calls f on pieces of pr whose operands and grid fit lim. Pieces
// along K after the first accumulate (Beta 1, no bias).
func (pr *mmProblem) split(d *gpu.Device, lim func(*mmProblem) (string, error), f func(*mmProblem) error) error {
	dim, err := lim(pr)
	if err != nil {
		return err
	}
	if dim == "" {
		return f(pr)
	}
	p := pr.p
	var size int
	switch dim {
	case "batch":
		size = p.Batch
	case "m":
		size = p.M
	case "n":
		size = p.N
	case "k":
		size = p.K
	}
	if size < 2 {
		ea, eb, ec := pr.extents()
		return fmt.Errorf("matmul: cannot split %v into bindings that fit %s (a %d, b %d, c %d elements)", p, d, ea, eb, ec)
	}
	// Split points on multiples of 64 keep 4-element alignment of the pieces.
	h := size / 2
	if h > 64 {
		h = h / 64 * 64
	}
	lo, hi := *pr, *pr
	switch dim {
	case "batch":
		lo.p.Batch, hi.p.Batch = h, p.Batch-h
		hi.a = pr.a.At(int64(h) * p.StrideA)
		hi.b = pr.b.At(int64(h) * p.StrideB)
		hi.c = pr.c.At(int64(h) * p.StrideC)
	case "m":
		lo.p.M, hi.p.M = h, p.M-h
		if p.TransA {
			hi.a = pr.a.At(int64(h))
		} else {
			hi.a = pr.a.At(int64(h) * int64(p.LDA))
		}
		hi.c = pr.c.At(int64(h) * int64(p.LDC))
	case "n":
		lo.p.N, hi.p.N = h, p.N-h
		if p.TransB {
			hi.b = pr.b.At(int64(h) * int64(p.LDB))
		} else {
			hi.b = pr.b.At(int64(h))
		}
		hi.c = pr.c.At(int64(h))
		if pr.bias.Buf != nil {
			hi.bias = pr.bias.At(int64(h))
		}
	case "k":
		lo.p.K, hi.p.K = h, p.K-h
		if p.TransA {
			hi.a = pr.a.At(int64(h) * int64(p.LDA))
		} else {
			hi.a = pr.a.At(int64(h))
		}
		if p.TransB {
			hi.b = pr.b.At(int64(h))
		} else {
			hi.b = pr.b.At(int64(h) * int64(p.LDB))
		}
		hi.p.Beta = 1
		hi.bias = Mem{}
	}
	if err := lo.split(d, lim, f); err != nil {
		return err
	}
	return hi.split(d, lim, f)
}

// mmSplitDim says which dimension to split so that an operand of n elements
// fits max: the batch first, then the operand's rows (dimension rows), or
// its columns (cols) when it has a single row: splitting the rows of a
// one-row operand leaves it as long as it was.
func mmSplitDim(p *MatMulParams, n, max int64, rows, cols string) string {
	if n <= max {
		return ""
	}
	if p.Batch > 1 {
		return "batch"
	}
	if p.dim(rows) < 2 {
		return cols
	}
	return rows
}

// dim is the size of dimension "m", "n" or "k".
func (p *MatMulParams) dim(name string) int {
	switch name {
	case "m":
		return p.M
	case "n":
		return p.N
	}
	return p.K
}

// mmTexelCfg is a tile shape of the texel variant: a workgroup of lanes
// invocations computes tm rows × lanes·tn4·4 columns of C, stepping through
// K in blocks of 4·kb4 values.
type mmTexelCfg struct {
	lanes, tm, tn4 int
	kb4            int
	bcast          bool // share A fetches through subgroup shuffles (kb4 <= lanes)
}

// mmTexelConfig picks the tile shape of the texel variant for d and p.
//
// Measured on lavapipe (8-lane subgroups, AVX2): each lane owning 32 rows ×
// 8 columns was fastest at 1024³; fewer rows fetch B more often per
// multiply-add, more columns spill. K blocks of 16 run as fast as blocks of
// 32 and compile in two thirds of the time (lavapipe compiles a pipeline at
// its first dispatch, about 2 s for the largest tile). Products with few
// rows use shorter tiles so that little work is wasted, and so do products
// whose rows of C cannot be written as whole 4-element groups (offset, LDC
// or N not a multiple of 4): their element-wise stores make long code.
// Operands that cannot be read as RGBA32F texels (leading dimension or
// offset not a multiple of 4) take a slower path with float texels and
// small tiles.
func mmTexelConfig(d *gpu.Device, p *MatMulParams, vecA, vecB, vecC bool) mmTexelCfg {
	if o := matmulTexelOverride; o != nil {
		cfg := *o
		cfg.fit()
		return cfg
	}
	info := d.Info()
	cfg := mmTexelCfg{lanes: 8, tn4: 2}
	// Sharing A through subgroup shuffles needs the workgroup to be exactly
	// one subgroup of a known, fixed size.
	if info.SubgroupInCompute && info.SubgroupOps&gpu.SubgroupShuffle != 0 && info.SubgroupSize >= 4 && info.SubgroupSize <= 16 &&
		(info.MinSubgroupSize == 0 || info.MinSubgroupSize == info.MaxSubgroupSize) {
		cfg.lanes = int(info.SubgroupSize)
		cfg.bcast = true
	}
	switch {
	case !vecA || !vecB:
		cfg.tm, cfg.kb4 = 8, 2
	case p.M >= 96 && vecC:
		cfg.tm, cfg.kb4 = 32, 4
	case p.M > 8:
		cfg.tm, cfg.kb4 = 16, 4
	default:
		cfg.tm, cfg.kb4 = 4, 8
	}
	cfg.fit()
	return cfg
}

// fit makes the block depth agree with the lane count when A is shared
// through shuffles: kb4 must divide lanes, and lanes/kb4 the rows. Every
// configuration goes through it after its fields are set, overrides
// included.
func (cfg *mmTexelCfg) fit() {
	if cfg.bcast {
		for cfg.kb4 > 1 && (cfg.lanes%cfg.kb4 != 0 || cfg.tm%(cfg.lanes/cfg.kb4) != 0) {
			cfg.kb4--
		}
	}
}

// matmulTexelOverride replaces the texel tile table (tests, experiments).
var matmulTexelOverride *mmTexelCfg

func (cfg mmTexelCfg) cols() int { return cfg.lanes * cfg.tn4 * 4 }

// rowsA is the number of rows of A each lane fetches per block.
func (cfg mmTexelCfg) rowsA() int {
	if cfg.bcast {
		return cfg.tm / (cfg.lanes / cfg.kb4)
	}
	return cfg.tm
}

// texelVec reports which operands of pr can be read as RGBA32F texels when
// each lane fetches rowsA rows of A (a multiple of 4 when A is stored K×M).
func (pr *mmProblem) texelVec(rowsA int) (vecA, vecB, vecC bool) {
	p := &pr.p
	aligned := func(m Mem, ld int, stride int64) bool {
		return m.Off%4 == 0 && ld%4 == 0 && (p.Batch == 1 || stride%4 == 0)
	}
	vecA = aligned(pr.a, p.LDA, p.StrideA) && (!p.TransA || rowsA%4 == 0)
	vecB = aligned(pr.b, p.LDB, p.StrideB)
	vecC = aligned(pr.c, p.LDC, p.StrideC) && p.N%4 == 0
	return
}

func (cfg mmTexelCfg) limits(d *gpu.Device, _ *mmProblem) func(*mmProblem) (string, error) {
	info := d.Info()
	texMax := func(vec bool) int64 {
		n := int64(info.MaxTexelBufferElements)
		if vec {
			n *= 4
		}
		return n - 8 // room for the alignment shift and rounding
	}
	return func(q *mmProblem) (string, error) {
		vecA, vecB, _ := q.texelVec(cfg.rowsA())
		return q.splitFor(info, texMax(vecA), texMax(vecB), maxElems(d), cfg.tm, cfg.cols()), nil
	}
}

// splitFor names the dimension along which q must be split to fit the
// device: the batch within the grid's z count, the elements A, B and C span
// within maxA, maxB and maxC, and the grid of tileM×tileN tiles of C within
// its x and y counts. It returns "" when q fits.
func (q *mmProblem) splitFor(info gpu.DeviceInfo, maxA, maxB, maxC int64, tileM, tileN int) string {
	p := &q.p
	if p.Batch > int(info.MaxWorkgroupCount[2]) {
		return "batch"
	}
	// The stored rows and columns of A (M×K, or K×M when transposed) and
	// B (K×N, or N×K).
	aRows, aCols, bRows, bCols := "m", "k", "k", "n"
	if p.TransA {
		aRows, aCols = "k", "m"
	}
	if p.TransB {
		bRows, bCols = "n", "k"
	}
	ea, eb, ec := q.extents()
	if s := mmSplitDim(p, ea, maxA, aRows, aCols); s != "" {
		return s
	}
	if s := mmSplitDim(p, eb, maxB, bRows, bCols); s != "" {
		return s
	}
	if s := mmSplitDim(p, ec, maxC, "m", "n"); s != "" {
		return s
	}
	if (p.N+tileN-1)/tileN > int(info.MaxWorkgroupCount[0]) {
		return "n"
	}
	if (p.M+tileM-1)/tileM > int(info.MaxWorkgroupCount[1]) {
		return "m"
	}
	return ""
}

// bindTexel binds n elements of m as a texel view (four elements per texel
// when vec), or the buffer's first texel when n is 0 (nothing is read).
func mmBindTexel(d *gpu.Device, m Mem, n int64, vec bool) (gpu.Binding, uint32) {
	texel := int64(1)
	if vec {
		texel = 4
	}
	if n == 0 {
		b, _ := texelSpan(d, Mem{Buf: m.Buf, Type: m.Type}, 1, texel)
		return b, 0
	}
	return texelSpan(d, m, n, texel)
}

func (pr *mmProblem) dispatchTexel(r *gpu.Recorder, d *gpu.Device, cfg mmTexelCfg) error {
	const op = "matmul"
	p := &pr.p
	vecA, vecB, vecC := pr.texelVec(cfg.rowsA())
	kernels := [4]*gpu.Kernel{matmulTexel11, matmulTexel14, matmulTexel41, matmulTexel44}
	if pr.b.Type.Is16() {
		kernels = [4]*gpu.Kernel{matmulTexelW16x11, matmulTexelW16x14, matmulTexelW16x41, matmulTexelW16x44}
	}
	k := kernels[2*mmBool(vecA)+mmBool(vecB)]
	hasBias := pr.bias.Buf != nil
	spec := []uint32{uint32(cfg.lanes), uint32(cfg.tm), uint32(cfg.tn4), mmBool(p.TransA), mmBool(p.TransB),
		mmBool(vecA), mmBool(vecB), mmBool(vecC), mmBool(cfg.bcast), mmBool(hasBias), mmBool(p.Beta != 0), uint32(cfg.kb4)}
	if pr.b.Type.Is16() {
		spec = append(spec, mmBool(pr.b.Type == ElemBF16))
	}
	pipe, err := pipeline(d, op, k, spec...)
	if err != nil {
		return err
	}
	ea, eb, ec := pr.extents()
	ab, ao := mmBindTexel(d, pr.a, ea, vecA)
	bb, bo := mmBindTexel(d, pr.b, eb, vecB)
	cb, co := span(d, pr.c, ec)
	if (vecA && ao%4 != 0) || (vecB && bo%4 != 0) || (vecC && co%4 != 0) {
		return fmt.Errorf("%s: internal: misaligned vec4 view (shifts %d, %d, %d)", op, ao, bo, co)
	}
	var biasB gpu.Binding
	var biasO uint32
	if hasBias {
		biasB, biasO = texelSpan(d, pr.bias, int64(p.N), 1)
	} else {
		biasB, _ = texelSpan(d, Mem{Buf: pr.a.Buf}, 1, 1)
	}
	last := func(shift uint32, n int64) uint32 {
		if n == 0 {
			return shift
		}
		return shift + uint32(n) - 1
	}
	push := []uint32{uint32(p.M), uint32(p.N), uint32(p.K), uint32(p.LDA), uint32(p.LDB), uint32(p.LDC),
		ao, bo, co, biasO, uint32(p.StrideA), uint32(p.StrideB), uint32(p.StrideC),
		last(ao, ea), last(bo, eb), f32(p.Alpha), f32(p.Beta)}
	groups := [3]uint32{uint32((p.N + cfg.cols() - 1) / cfg.cols()), uint32((p.M + cfg.tm - 1) / cfg.tm), uint32(p.Batch)}
	return r.Dispatch(pipe, groups, push, ab, bb, biasB, cb)
}

// MatMulRef is the float64 reference of MatMul with the same semantics: c,
// a and b hold the (batched) matrices from index 0; bias is (N,) or nil.
func MatMulRef(c, a, b []float64, p MatMulParams, bias []float64) {
	if p.Batch == 0 {
		p.Batch = 1
	}
	lda, ldb, ldc := p.LDA, p.LDB, p.LDC
	if lda == 0 {
		_, lda = p.aDims()
	}
	if ldb == 0 {
		_, ldb = p.bDims()
	}
	if ldc == 0 {
		ldc = p.N
	}
	alpha, beta := float64(p.Alpha), float64(p.Beta)
	for z := 0; z < p.Batch; z++ {
		az, bz, cz := a[int64(z)*p.StrideA:], b[int64(z)*p.StrideB:], c[int64(z)*p.StrideC:]
		for m := 0; m < p.M; m++ {
			for n := 0; n < p.N; n++ {
				s := 0.0
				for k := 0; k < p.K; k++ {
					var x, y float64
					if p.TransA {
						x = az[k*lda+m]
					} else {
						x = az[m*lda+k]
					}
					if p.TransB {
						y = bz[n*ldb+k]
					} else {
						y = bz[k*ldb+n]
					}
					s += x * y
				}
				v := alpha * s
				if beta != 0 {
					v += beta * cz[m*ldc+n]
				}
				if bias != nil {
					v += bias[n]
				}
				cz[m*ldc+n] = v
			}
		}
	}
}

// Backward. For C = Alpha·op(A)·op(B) + Beta·C0 + bias, with dC the
// gradient of C: d op(A) = Alpha·dC·op(B)ᵀ and d op(B) = Alpha·op(A)ᵀ·dC, two
// more products with the transpositions folded into their flags. (The
// gradient of C0 is Beta·dC, that of the bias the column sums of dC.)

// mmGradPlan is one gradient product: out = Alpha·X·Y with (X, Y) the
// gradient dC and the other operand, in the order given by swap.
type mmGradPlan struct {
	q    MatMulParams // one batch
	swap bool         // X is the other operand, Y is dC
	// Per-batch offsets of out, dC and the other operand; shared is set
	// when out is shared by every batch (stride 0), so the batches are
	// separate products summed into it.
	outStride, dcStride, otherStride int64
	shared                           bool
}

func mmGradA(p MatMulParams) mmGradPlan {
	g := mmGradPlan{outStride: p.StrideA, dcStride: p.StrideC, otherStride: p.StrideB}
	if !p.TransA {
		// dA (M×K) = dC (M×N) · op(B)ᵀ (N×K)
		g.q = MatMulParams{M: p.M, N: p.K, K: p.N, TransB: !p.TransB, LDA: p.LDC, LDB: p.LDB, LDC: p.LDA}
	} else {
		// dA (K×M) = op(B) (K×N) · dCᵀ (N×M)
		g.q = MatMulParams{M: p.K, N: p.M, K: p.N, TransA: p.TransB, TransB: true, LDA: p.LDB, LDB: p.LDC, LDC: p.LDA}
		g.swap = true
	}
	return g.finish(p)
}

func mmGradB(p MatMulParams) mmGradPlan {
	g := mmGradPlan{outStride: p.StrideB, dcStride: p.StrideC, otherStride: p.StrideA}
	if !p.TransB {
		// dB (K×N) = op(A)ᵀ (K×M) · dC (M×N)
		g.q = MatMulParams{M: p.K, N: p.N, K: p.M, TransA: !p.TransA, LDA: p.LDA, LDB: p.LDC, LDC: p.LDB}
		g.swap = true
	} else {
		// dB (N×K) = dCᵀ (N×M) · op(A) (M×K)
		g.q = MatMulParams{M: p.N, N: p.K, K: p.M, TransA: true, TransB: p.TransA, LDA: p.LDC, LDB: p.LDA, LDC: p.LDB}
	}
	return g.finish(p)
}

func (g mmGradPlan) finish(p MatMulParams) mmGradPlan {
	g.q.Alpha = p.Alpha
	g.q.Batch = p.Batch
	g.shared = p.Batch > 1 && g.outStride == 0
	if g.shared {
		g.q.Batch = 1
	}
	g.q.StrideC = g.outStride
	if g.swap {
		g.q.StrideA, g.q.StrideB = g.otherStride, g.dcStride
	} else {
		g.q.StrideA, g.q.StrideB = g.dcStride, g.otherStride
	}
	return g
}

// run calls mm once for a batched gradient, or once per batch (summing)
// when the gradient's operand is shared by all batches.
func (g mmGradPlan) run(batch int, accumulate bool, mm func(q MatMulParams, z int64) error) error {
	q := g.q
	if !g.shared {
		if accumulate {
			q.Beta = 1
		}
		return mm(q, 0)
	}
	for z := 0; z < batch; z++ {
		if accumulate || z > 0 {
			q.Beta = 1
		}
		if err := mm(q, int64(z)); err != nil {
			return err
		}
	}
	return nil
}

// MatMulGradA records the gradient of A for the product described by p
// (see MatMul): da gets Alpha·dC·op(B)ᵀ, or its transpose when p.TransA, in
// A's layout (p.LDA, p.StrideA; a shared A, StrideA 0, gets the sum over
// the batches). dc is the gradient of C in C's layout (p.LDC, p.StrideC);
// b is B as in the forward product. With accumulate, the gradient is added
// to da; otherwise da is overwritten.
func MatMulGradA(r *gpu.Recorder, da, dc, b Mem, p MatMulParams, accumulate bool) error {
	return matmulGrad(r, "a", da, dc, b, p, accumulate)
}

// MatMulGradB records the gradient of B for the product described by p: db
// gets Alpha·op(A)ᵀ·dC, or its transpose when p.TransB, in B's layout (a
// shared B gets the sum over the batches). a is A as in the forward product;
// dc and accumulate are as for MatMulGradA.
func MatMulGradB(r *gpu.Recorder, db, a, dc Mem, p MatMulParams, accumulate bool) error {
	return matmulGrad(r, "b", db, dc, a, p, accumulate)
}

// matmulGrad records the gradient of operand which ("a" or "b") into dst,
// from dc and the other operand of the forward product.
func matmulGrad(r *gpu.Recorder, which string, dst, dc, other Mem, p MatMulParams, accumulate bool) error {
	p, err := matmulNormalize(p)
	if err != nil {
		return err
	}
	rows, cols := p.aDims()
	ld, stride, plan := p.LDA, p.StrideA, mmGradA
	if which == "b" {
		rows, cols = p.bDims()
		ld, stride, plan = p.LDB, p.StrideB, mmGradB
	}
	if err := mmGradCheck(which, p.Batch, stride, mmExtent(1, rows, cols, ld, 0)); err != nil {
		return err
	}
	g := plan(p)
	if g.swap && other.Type.Is16() {
		// The other operand would be the left one (A) of the gradient's
		// product, which reads only 32-bit elements.
		return fmt.Errorf("matmul: gradient of %s with transposition flags (%v, %v): the other operand holds %v elements; a 16-bit B serves only the gradient of an untransposed A",
			which, p.TransA, p.TransB, other.Type)
	}
	return g.run(p.Batch, accumulate, func(q MatMulParams, z int64) error {
		x, y := dc.At(z*g.dcStride), other.At(z*g.otherStride)
		if g.swap {
			x, y = y, x
		}
		return MatMul(r, dst, x, y, q, Mem{})
	})
}

// mmGradCheck refuses the gradient of an operand whose batches overlap
// without coinciding: its elements would need sums over some batches only.
func mmGradCheck(name string, batch int, stride, n int64) error {
	if batch > 1 && stride > 0 && stride < n {
		return fmt.Errorf("matmul: gradient of %s: batches overlap (stride %d < %d elements per matrix)", name, stride, n)
	}
	return nil
}

// MatMulGradARef and MatMulGradBRef are the float64 references of
// MatMulGradA and MatMulGradB (slices from index 0).
func MatMulGradARef(da, dc, b []float64, p MatMulParams, accumulate bool) {
	p, _ = matmulNormalize(p)
	g := mmGradA(p)
	g.run(p.Batch, accumulate, func(q MatMulParams, z int64) error {
		x, y := dc[z*g.dcStride:], b[z*g.otherStride:]
		if g.swap {
			x, y = y, x
		}
		MatMulRef(da, x, y, q, nil)
		return nil
	})
}

// MatMulGradBRef is the reference of MatMulGradB.
func MatMulGradBRef(db, a, dc []float64, p MatMulParams, accumulate bool) {
	p, _ = matmulNormalize(p)
	g := mmGradB(p)
	g.run(p.Batch, accumulate, func(q MatMulParams, z int64) error {
		x, y := dc[z*g.dcStride:], a[z*g.otherStride:]
		if g.swap {
			x, y = y, x
		}
		MatMulRef(db, x, y, q, nil)
		return nil
	})
}
