package gpu

import (
	"fmt"
	"unsafe"
)

// stagingSize bounds the host-visible buffers used for uploads and
// downloads on devices whose tensor memory is not host visible (discrete
// GPUs).
const stagingSize = 64 << 20

// Write copies data into the buffer starting at byte offset off. It waits
// for submitted work first, so it never races with the device.
func (b *Buffer) Write(off int64, data []byte) error {
	return b.transfer(off, data, true)
}

// Read copies len(dst) bytes starting at byte offset off into dst, after
// waiting for all submitted work.
func (b *Buffer) Read(off int64, dst []byte) error {
	return b.transfer(off, dst, false)
}

// Element is a type that can be copied to and from device buffers.
type Element interface {
	~float32 | ~int32 | ~uint32 | ~int64 | ~uint64 | ~float64 | ~uint16 | ~int8 | ~uint8
}

func asBytes[T Element](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*int(unsafe.Sizeof(v[0])))
}

// WriteSlice copies v into b starting at element index at.
func WriteSlice[T Element](b *Buffer, at int64, v []T) error {
	var z T
	return b.Write(at*int64(unsafe.Sizeof(z)), asBytes(v))
}

// ReadSlice fills dst from b starting at element index at.
func ReadSlice[T Element](b *Buffer, at int64, dst []T) error {
	var z T
	return b.Read(at*int64(unsafe.Sizeof(z)), asBytes(dst))
}

func (b *Buffer) transfer(off int64, data []byte, write bool) error {
	what := "read"
	if write {
		what = "write"
	}
	if b == nil {
		return fmt.Errorf("gpu: %s of a nil buffer", what)
	}
	d := b.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	if b.freed {
		return fmt.Errorf("gpu: %s of %s after Free", what, b)
	}
	if b.blk.dead {
		return fmt.Errorf("gpu: %s of %s, whose arena was released", what, b)
	}
	n := int64(len(data))
	if off < 0 || off+n > b.size {
		return fmt.Errorf("gpu: %s of bytes [%d,%d) outside %s", what, off, off+n, b)
	}
	if n == 0 {
		return nil
	}
	if err := d.waitLocked(); err != nil {
		return err
	}
	if b.blk.mapped != nil {
		host := unsafe.Slice((*byte)(unsafe.Add(b.blk.mapped, b.off+off)), n)
		if write {
			copy(host, data)
			return d.flush(b.blk, b.off+off, n)
		}
		if err := d.invalidate(b.blk, b.off+off, n); err != nil {
			return err
		}
		copy(data, host)
		return nil
	}
	return d.stagedTransfer(b, off, data, write)
}

// flush and invalidate make host writes visible to the device and device
// writes visible to the host on memory that is not host coherent.
func (d *Device) flush(b *block, off, n int64) error {
	if b.coherent {
		return nil
	}
	lo, hi := d.atomRange(b, off, n)
	return vkError("vkFlushMappedMemoryRanges", syncMapped(d.dev, b.mem, lo, hi-lo, true))
}

func (d *Device) invalidate(b *block, off, n int64) error {
	if b.coherent {
		return nil
	}
	lo, hi := d.atomRange(b, off, n)
	return vkError("vkInvalidateMappedMemoryRanges", syncMapped(d.dev, b.mem, lo, hi-lo, false))
}

func (d *Device) atomRange(b *block, off, n int64) (lo, hi int64) {
	atom := int64(d.info.NonCoherentAtomSize)
	if atom < 1 {
		atom = 1
	}
	lo = off / atom * atom
	hi = (off + n + atom - 1) / atom * atom
	if hi > b.size {
		hi = b.size
	}
	return lo, hi
}

// stagingFor returns the staging buffer for uploads (write) or downloads,
// creating it at first use; downloads share the uploads' buffer when their
// memory types are the same. d.mu is held.
func (d *Device) stagingFor(write bool) (*Buffer, error) {
	m := d.mem
	st, typ := &d.stageDown, m.downType
	if write || m.downType == m.upType {
		st, typ = &d.stageUp, m.upType
	}
	if *st == nil {
		blk, err := m.newBlock(nil, m.stagingSize, true, uint32(typ), true)
		if err != nil {
			what := "readback"
			if write {
				what = "upload"
			}
			return nil, fmt.Errorf("gpu: staging buffer for an %s: %w", what, err)
		}
		*st = &Buffer{d: d, blk: blk, size: m.stagingSize, alloc: m.stagingSize}
	}
	return *st, nil
}

// stagedTransfer copies through a host-visible staging buffer, in chunks of
// at most its size, each its own submission. d.mu is held and the queue is
// idle.
func (d *Device) stagedTransfer(b *Buffer, off int64, data []byte, write bool) error {
	st, err := d.stagingFor(write)
	if err != nil {
		return err
	}
	size := st.size
	host := unsafe.Slice((*byte)(st.blk.mapped), size)
	for done := int64(0); done < int64(len(data)); {
		n := int64(len(data)) - done
		if n > size {
			n = size
		}
		c := cmd{op: cmdCopy, size: cUint64(n)}
		if write {
			copy(host[:n], data[done:done+n])
			if err := d.flush(st.blk, 0, n); err != nil {
				return err
			}
			c.buf, c.off = handle(unsafe.Pointer(st.blk.buf)), 0
			c.buf2, c.off2 = handle(unsafe.Pointer(b.blk.buf)), cUint64(b.off+off+done)
		} else {
			c.buf, c.off = handle(unsafe.Pointer(b.blk.buf)), cUint64(b.off+off+done)
			c.buf2, c.off2 = handle(unsafe.Pointer(st.blk.buf)), 0
		}
		// The barrier first: the finished work of earlier submissions wrote
		// (or read) the tensor, and a fence wait orders nothing on the
		// device side. The host barrier last, for the host's read.
		cmds := []cmd{{op: cmdBarrier}, c, {op: cmdHostBarrier}}
		if err := d.runNow(cmds); err != nil {
			return err
		}
		if !write {
			if err := d.invalidate(st.blk, 0, n); err != nil {
				return err
			}
			copy(data[done:done+n], host[:n])
		}
		done += n
	}
	return nil
}

// runNow records cmds into a one-time command buffer, submits it and waits.
// d.mu is held.
func (d *Device) runNow(cmds []cmd) error {
	if _, err := d.submitLocked(cmds, nil, nil); err != nil {
		return err
	}
	return d.waitLocked()
}
