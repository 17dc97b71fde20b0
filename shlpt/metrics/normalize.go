package metrics

import (
	"strings"
	"unicode"
)

// Normalize lower-cases s, removes ASCII punctuation, removes the articles
// "a", "an" and "the", and collapses white space: the reference's
// normalize_text, which is also the official SQuAD normalize_answer.
// Note that "_" is punctuation: "not_entailment" becomes "notentailment".
func Normalize(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if isPunct(r) {
			return -1
		}
		return r
	}, s)
	s = removeArticles(s)
	return strings.Join(strings.FieldsFunc(s, isPySpace), " ")
}

// Tokens returns the words of Normalize(s).
func Tokens(s string) []string { return strings.FieldsFunc(Normalize(s), isPySpace) }

// isPunct reports membership in Python's string.punctuation.
func isPunct(r rune) bool {
	return r < 0x80 && strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r)
}

// isWord matches Python's \w for str patterns: letters, numbers, '_'.
func isWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) }

// isPySpace matches Python's str.split(): Go's white space plus the
// information separators U+001C..U+001F.
func isPySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// removeArticles replaces every maximal run of word characters that is
// "a", "an" or "the" with a space, as re.sub(r'\b(a|an|the)\b', ' ', s).
func removeArticles(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); {
		if !isWord(rs[i]) {
			b.WriteRune(rs[i])
			i++
			continue
		}
		j := i
		for j < len(rs) && isWord(rs[j]) {
			j++
		}
		switch w := string(rs[i:j]); w {
		case "a", "an", "the":
			b.WriteByte(' ')
		default:
			b.WriteString(w)
		}
		i = j
	}
	return b.String()
}
