package benchkit

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Table prints rows of cells in aligned columns: the first column and any
// after LeftFrom are left-aligned, the others right-aligned.
type Table struct {
	rows     [][]string
	LeftFrom int // 0: only the first column is left-aligned
}

// NewTable starts a table with its header row.
func NewTable(header ...string) *Table { return &Table{rows: [][]string{header}} }

// Row adds a row; cells are printed with %v.
func (t *Table) Row(cells ...any) {
	r := make([]string, len(cells))
	for i, c := range cells {
		r[i] = fmt.Sprint(c)
	}
	t.rows = append(t.rows, r)
}

// Print writes the table to w.
func (t *Table) Print(w io.Writer) {
	var width []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i > 0 {
				b.WriteString("  ")
			}
			if i == 0 || (t.LeftFrom > 0 && i >= t.LeftFrom) {
				b.WriteString(c + pad)
			} else {
				b.WriteString(pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// F formats x with prec decimals, "-" for NaN or 0 (not measured).
func F(x float64, prec int) string {
	if math.IsNaN(x) || x == 0 {
		return "-"
	}
	return strconv.FormatFloat(x, 'f', prec, 64)
}
