package cli

// commandNames lists the names of the binary's commands, in order.
func (a *App) commandNames() []string {
	var names []string
	for _, c := range a.commands() {
		names = append(names, c.Name)
	}
	return names
}

// nearest returns the name among names closest to typed in edit distance, when it
// is close enough to be what was meant (at most two edits, and fewer edits than
// typed has letters); else "".
func nearest(typed string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		d := editDistance(typed, n)
		if d < bestDist && d < len([]rune(typed)) {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, counted in runes: the fewest
// insertions, deletions and substitutions that turn one into the other.
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	prev := make([]int, len(y)+1)
	cur := make([]int, len(y)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(x); i++ {
		cur[0] = i
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(y)]
}
