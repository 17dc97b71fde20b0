package tokenizer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// space is SentencePiece's visible space, U+2581, which stands for ' ' inside
// pieces.
const space = "\u2581"

// charsmap is a SentencePiece precompiled normalization map: a darts-clone
// double-array trie over UTF-8 byte strings whose values index NUL-terminated
// replacement strings. It is the "precompiled_charsmap" of tokenizer.json and
// the normalizer_spec of spiece.model (for T5, NFKC plus mapping control
// characters such as tab and newline to a space).
type charsmap struct {
	units      []uint32
	normalized []byte
}

// parseCharsmap decodes the blob: a little-endian uint32 trie size in bytes,
// the trie units, then the replacement strings.
func parseCharsmap(blob []byte) (*charsmap, error) {
	if len(blob) < 4 {
		return nil, errors.New("precompiled_charsmap is shorter than 4 bytes")
	}
	size := binary.LittleEndian.Uint32(blob)
	if size == 0 || size%4 != 0 || uint64(size) > uint64(len(blob)-4) {
		return nil, fmt.Errorf("precompiled_charsmap trie size %d does not fit the %d-byte blob", size, len(blob))
	}
	m := &charsmap{units: make([]uint32, size/4), normalized: blob[4+size:]}
	for i := range m.units {
		m.units[i] = binary.LittleEndian.Uint32(blob[4+4*i:])
	}
	return m, nil
}

// Darts-clone unit fields.
func unitHasLeaf(u uint32) bool  { return (u>>8)&1 == 1 }
func unitValue(u uint32) uint32  { return u & (1<<31 - 1) }
func unitLabel(u uint32) uint32  { return u & (1<<31 | 0xff) }
func unitOffset(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }

// maxTrieResults is SentencePiece's kMaxTrieResultsSize: only the first 32
// prefix matches are considered when looking for the longest.
const maxTrieResults = 32

// longestPrefix returns the replacement for the longest key of the map that
// is a prefix of s, and the key's length; n is 0 when no key matches. A
// malformed trie yields no match rather than a panic.
func (m *charsmap) longestPrefix(s string) (repl string, n int) {
	if len(m.units) == 0 {
		return "", 0
	}
	pos := unitOffset(m.units[0])
	found := 0
	for i := 0; i < len(s); i++ {
		c := uint32(s[i])
		pos ^= c
		if int(pos) >= len(m.units) {
			break
		}
		u := m.units[pos]
		if unitLabel(u) != c {
			break
		}
		pos ^= unitOffset(u)
		if unitHasLeaf(u) {
			if int(pos) >= len(m.units) {
				break
			}
			if found++; found > maxTrieResults {
				break
			}
			v := unitValue(m.units[pos])
			if int(v) >= len(m.normalized) {
				break
			}
			end := v
			for int(end) < len(m.normalized) && m.normalized[end] != 0 {
				end++
			}
			repl, n = string(m.normalized[v:end]), i+1
		}
	}
	return repl, n
}

// normalizePrefix is SentencePiece's Normalizer::NormalizePrefix: the
// replacement of the longest rule matching the start of s, or else the first
// character unchanged, or U+FFFD for one byte of malformed UTF-8. It returns
// the replacement and the number of bytes of s consumed.
func (m *charsmap) normalizePrefix(s string) (string, int) {
	if repl, n := m.longestPrefix(s); n > 0 {
		return repl, n
	}
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && size <= 1 {
		return "\uFFFD", 1
	}
	return s[:size], size
}

// normalize is SentencePiece's Normalizer::Normalize with the T5 settings
// (add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces): map s
// through the charsmap, drop leading and trailing spaces, collapse runs of
// spaces into one, turn spaces into U+2581 and, when prefix is set, start
// with one U+2581. Only ' ' counts as whitespace here; the charsmap has
// already turned tabs, newlines and the like into spaces.
//
// Doing this ourselves is the fix for runs of spaces and tabs: sugarme v0.3.0
// drops the Replace(" {2,}" → "▁") rule of tokenizer.json (its loader tests
// the wrong map for "Regex") and its Precompiled normalizer duplicates text
// when a character is remapped, so it emitted extra "▁" tokens.
func (m *charsmap) normalize(s string, prefix bool) string {
	for len(s) > 0 { // leading whitespace
		repl, n := m.normalizePrefix(s)
		if repl != " " {
			break
		}
		s = s[n:]
	}
	if len(s) == 0 {
		return ""
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/4 + len(space))
	if prefix {
		b.WriteString(space)
	}
	prevSpace := true
	for len(s) > 0 {
		repl, n := m.normalizePrefix(s)
		s = s[n:]
		if prevSpace {
			repl = strings.TrimLeft(repl, " ")
		}
		if repl == "" {
			continue
		}
		for i := 0; i < len(repl); i++ {
			if repl[i] == ' ' {
				b.WriteString(space)
			} else {
				b.WriteByte(repl[i])
			}
		}
		prevSpace = repl[len(repl)-1] == ' '
	}
	out := b.String()
	for strings.HasSuffix(out, space) {
		out = out[:len(out)-len(space)]
	}
	return out
}
