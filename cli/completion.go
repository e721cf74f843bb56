package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// completed is what a completion script knows of one command: its subcommands (or
// the fixed words it takes first) and its flags.
type completed struct {
	Name, Summary string
	Words, Flags  []string
}

func cmdCompletion(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("completion")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return Usagef("completion takes one shell: bash, zsh or fish (e.g. source <(%s completion bash))", e.App.name())
	}
	cmds := e.completions(ctx)
	switch fs.Arg(0) {
	case "bash":
		writeBash(e.Stdout, e.App.name(), cmds)
	case "zsh":
		writeZsh(e.Stdout, e.App.name(), cmds)
	case "fish":
		writeFish(e.Stdout, e.App.name(), cmds)
	default:
		return Usagef("completion: no shell %q (bash, zsh, fish)", fs.Arg(0))
	}
	return nil
}

// flagLine is a flag's line in a flag set's PrintDefaults.
var flagLine = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][\w-]*)`)

// completions reads every command's words and flags from the command table and
// from what each command's --help prints (its flag set's defaults), so that the
// scripts follow the commands as they change, the application's own included.
func (e *Env) completions(ctx context.Context) []completed {
	var out []completed
	for _, c := range e.App.commands() {
		cc := completed{Name: c.Name, Summary: firstClause(c.Summary), Words: firstWords(e.App.name(), c)}
		if c.Name == "help" {
			cc.Words = e.App.commandNames()
		}
		if c.Name != "completion" {
			var help bytes.Buffer
			sub := &Env{Getenv: e.Getenv, Stdout: &help, Stderr: io.Discard, App: e.App}
			_ = c.Run(ctx, sub, []string{"--help"}) // --help returns flag.ErrHelp
			for _, m := range flagLine.FindAllStringSubmatch(help.String(), -1) {
				f := "--" + m[1]
				if len(m[1]) == 1 {
					f = "-" + m[1] // -n, -o: as their usage writes them
				}
				if !slices.Contains(cc.Flags, f) {
					cc.Flags = append(cc.Flags, f)
				}
			}
		}
		out = append(out, cc)
	}
	return out
}

// firstWords are the fixed words a command's usage lines put first: its
// subcommands (events dlq, events tail) or its targets (deploy
// monitoring|kubernetes|identities).
func firstWords(app string, c Command) []string {
	var words []string
	for _, line := range strings.Split(c.Usage, "\n") {
		fields := strings.Fields(strings.TrimSpace(line))
		if len(fields) > 0 && fields[0] == app {
			fields = fields[1:] // a continuation line: "       switchyard events tail ..."
		}
		if len(fields) < 2 || fields[0] != c.Name {
			continue
		}
		for _, w := range strings.Split(fields[1], "|") {
			if regexp.MustCompile(`^[a-z][a-z0-9-]*$`).MatchString(w) && !slices.Contains(words, w) {
				words = append(words, w)
			}
		}
	}
	return words
}

// firstClause shortens a summary to what a completion menu shows.
func firstClause(s string) string {
	if i := strings.IndexAny(s, ":;("); i > 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// shellName is name as a shell function's name.
func shellName(name string) string {
	return regexp.MustCompile(`[^A-Za-z0-9_]`).ReplaceAllString(name, "_")
}

// quoted single-quotes s for a POSIX-like shell.
func quoted(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func writeBash(w io.Writer, name string, cmds []completed) {
	fn := "_" + shellName(name) + "_complete"
	fmt.Fprintf(w, "# bash completion for %s: source <(%s completion bash), or save it in\n# /etc/bash_completion.d/%s\n", name, name, name)
	fmt.Fprintf(w, "%s() {\n\tlocal cur=${COMP_WORDS[COMP_CWORD]} words flags\n", fn)
	var names []string
	for _, c := range cmds {
		names = append(names, c.Name)
	}
	fmt.Fprintf(w, "\tif (( COMP_CWORD == 1 )); then\n\t\tCOMPREPLY=( $(compgen -W %s -- \"$cur\") )\n\t\treturn\n\tfi\n",
		quoted(strings.Join(append(names, "--help", "--version"), " ")))
	fmt.Fprintf(w, "\tcase ${COMP_WORDS[1]} in\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "\t%s) words=%s; flags=%s ;;\n", c.Name, quoted(strings.Join(c.Words, " ")), quoted(strings.Join(append(c.Flags, "--help"), " ")))
	}
	fmt.Fprintf(w, "\tesac\n")
	fmt.Fprintf(w, "\tif [[ $cur == -* ]]; then\n\t\tCOMPREPLY=( $(compgen -W \"$flags\" -- \"$cur\") )\n")
	fmt.Fprintf(w, "\telif (( COMP_CWORD == 2 )) && [[ -n $words ]]; then\n\t\tCOMPREPLY=( $(compgen -W \"$words\" -- \"$cur\") )\n\tfi\n}\n")
	fmt.Fprintf(w, "complete -o default -F %s %s\n", fn, name)
}

func writeZsh(w io.Writer, name string, cmds []completed) {
	fn := "_" + shellName(name)
	fmt.Fprintf(w, "#compdef %s\n# zsh completion for %s: source <(%s completion zsh), or save it as %s in a\n# directory of $fpath\n", name, name, name, fn)
	fmt.Fprintf(w, "%s() {\n\tlocal -a commands\n\tcommands=(\n", fn)
	for _, c := range cmds {
		fmt.Fprintf(w, "\t\t%s\n", quoted(c.Name+":"+strings.ReplaceAll(c.Summary, ":", `\:`)))
	}
	fmt.Fprintf(w, "\t)\n\tif (( CURRENT == 2 )); then\n\t\t_describe -t commands command commands\n\t\treturn\n\tfi\n")
	fmt.Fprintf(w, "\tlocal -a subs opts\n\tcase $words[2] in\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "\t%s) subs=(%s); opts=(%s) ;;\n", c.Name, strings.Join(c.Words, " "), strings.Join(append(c.Flags, "--help"), " "))
	}
	fmt.Fprintf(w, "\tesac\n")
	fmt.Fprintf(w, "\tif [[ $PREFIX == -* ]]; then\n\t\tcompadd -a opts\n\telif (( CURRENT == 3 && ${#subs} > 0 )); then\n\t\tcompadd -a subs\n\telse\n\t\t_files\n\tfi\n}\n")
	fmt.Fprintf(w, "if [[ $funcstack[1] == %s ]]; then\n\t%s \"$@\"\nelse\n\tcompdef %s %s\nfi\n", fn, fn, fn, name)
}

func writeFish(w io.Writer, name string, cmds []completed) {
	fmt.Fprintf(w, "# fish completion for %s: %s completion fish > ~/.config/fish/completions/%s.fish\n", name, name, name)
	fmt.Fprintf(w, "complete -c %s -n __fish_use_subcommand -l help -d 'show the commands'\n", name)
	fmt.Fprintf(w, "complete -c %s -n __fish_use_subcommand -l version -d 'print the version'\n", name)
	for _, c := range cmds {
		fmt.Fprintf(w, "complete -c %s -f -n __fish_use_subcommand -a %s -d %s\n", name, c.Name, quoted(c.Summary))
		seen := quoted("__fish_seen_subcommand_from " + c.Name)
		if len(c.Words) > 0 {
			fmt.Fprintf(w, "complete -c %s -f -n %s -a %s\n", name, seen, quoted(strings.Join(c.Words, " ")))
		}
		for _, f := range c.Flags {
			if long, ok := strings.CutPrefix(f, "--"); ok {
				fmt.Fprintf(w, "complete -c %s -n %s -l %s\n", name, seen, long)
			} else {
				fmt.Fprintf(w, "complete -c %s -n %s -s %s\n", name, seen, strings.TrimPrefix(f, "-"))
			}
		}
	}
}
