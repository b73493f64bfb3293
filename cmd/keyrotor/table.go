package main

import (
	"io"
	"os"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"
	"golang.org/x/term"
)

// How tables are shown. On a terminal a table is drawn with box lines and
// fitted to the terminal's width: the columns marked droppable go first, in
// their drop order, then the cells of the snippable columns are cut with an
// ellipsis (never silently: a secret name or key id cut without a mark
// could be taken for another). Anywhere else (a pipe, a file) it is plain
// text for scripts: tab-separated, header first, no box drawing, no colour,
// no ✓/✗.

// output is where a command writes and how: a terminal of Width columns, or
// plain text. Wide asks for the full table on a terminal.
type output struct {
	Terminal bool
	Width    int
	Wide     bool
}

// defaultWidth is the width assumed for a terminal whose size cannot be read.
const defaultWidth = 80

// detectOutput says whether w is a terminal, and its width. Tests replace
// it to run in-process as if on a terminal of a given width.
var detectOutput = func(w io.Writer) output {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return output{}
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		width = defaultWidth
	}
	return output{Terminal: true, Width: width}
}

// column is one column of a fitted table.
type column struct {
	Header string
	// Drop is the column's place in the drop order (1 goes first); 0: it
	// is always shown.
	Drop int
	// Cap and Min make a column snippable (its cells cut with an
	// ellipsis): on a terminal too narrow for the table, cells are first
	// cut to Cap, then, when dropping columns was not enough, down to Min
	// (the ellipsis included). 0: never cut.
	Cap, Min int
	// TerminalOnly is a column not in plain text (the ✓/✗ mark).
	TerminalOnly bool
}

// renderTable writes rows under cols to w as out says.
func renderTable(w io.Writer, out output, cols []column, rows [][]string) {
	if !out.Terminal {
		t := table.NewWriter()
		var header table.Row
		var keep []int
		for i, c := range cols {
			if !c.TerminalOnly {
				header = append(header, c.Header)
				keep = append(keep, i)
			}
		}
		t.AppendHeader(header)
		for _, r := range rows {
			row := make(table.Row, 0, len(keep))
			for _, i := range keep {
				row = append(row, r[i])
			}
			t.AppendRow(row)
		}
		io.WriteString(w, t.RenderTSV()+"\n")
		return
	}
	configs := make([]table.ColumnConfig, len(cols))
	for i := range cols {
		configs[i].Number = i + 1
	}
	render := func() string {
		t := table.NewWriter()
		style := table.StyleLight
		style.Options.DrawBorder = false // 4 columns more for the cells
		t.SetStyle(style)
		header := make(table.Row, len(cols))
		for i, c := range cols {
			header[i] = c.Header
		}
		t.AppendHeader(header)
		for _, r := range rows {
			row := make(table.Row, len(r))
			for i, v := range r {
				row[i] = v
			}
			t.AppendRow(row)
		}
		t.SetColumnConfigs(configs)
		return t.Render()
	}
	s := render()
	if out.Wide {
		io.WriteString(w, s+"\n")
		return
	}
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = text.StringWidthWithoutEscSequences(c.Header)
		for _, r := range rows {
			widths[i] = max(widths[i], text.StringWidthWithoutEscSequences(r[i]))
		}
	}
	cut := func(i, width int) {
		widths[i] = width
		configs[i].WidthMax = width
		configs[i].WidthMaxEnforcer = snip
	}
	// First cut what is longer than its column's cap (a 200-character
	// name should not push the other columns out).
	if text.LongestLineLen(s) > out.Width {
		for i, c := range cols {
			if c.Cap > 0 && widths[i] > c.Cap {
				cut(i, c.Cap)
			}
		}
		s = render()
	}
	// Then drop columns in their order until the table fits.
	for drop := 1; text.LongestLineLen(s) > out.Width; drop++ {
		found := false
		for i, c := range cols {
			if c.Drop == drop {
				configs[i].Hidden = true
				found = true
			}
		}
		if !found {
			break
		}
		s = render()
	}
	// Then narrow the widest shown snippable column, one column of text at
	// a time, until the table fits or each is at its minimum (then the
	// terminal wraps the lines).
	if excess := text.LongestLineLen(s) - out.Width; excess > 0 {
		for ; excess > 0; excess-- {
			widest := -1
			for i, c := range cols {
				if c.Min > 0 && !configs[i].Hidden && widths[i] > c.Min && (widest < 0 || widths[i] > widths[widest]) {
					widest = i
				}
			}
			if widest < 0 {
				break
			}
			cut(widest, widths[widest]-1)
		}
		s = render()
	}
	io.WriteString(w, s+"\n")
}

// snip cuts a cell to maxLen columns, the last one an ellipsis.
func snip(col string, maxLen int) string {
	return text.Snip(col, maxLen, "…")
}
