// Package dockerchanges applies the Dockerfile instructions of docker
// import --change (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER,
// VOLUME, WORKDIR) to an image config, as dockerd does.
package dockerchanges

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Error is a Dockerfile instruction of docker import --change that
// cannot be applied: not one a change may be (RUN, COPY, …: Message is
// dockerd's "run is not a valid change command"), one ctrpush does not
// apply (ONBUILD), or malformed. It wraps errdefs.ErrInvalidArgument.
type Error struct {
	Change  string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap lets errdefs.IsInvalidArgument hold.
func (e *Error) Unwrap() error { return errdefs.ErrInvalidArgument }

// Apply applies Dockerfile instructions (docker import --change,
// one per entry) to c for a Linux image: CMD, ENTRYPOINT, ENV, EXPOSE,
// LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR, with $VAR and ${VAR}
// taken from the environment the changes build (not in CMD or
// ENTRYPOINT, as docker does).
func Apply(c ocispec.ImageConfig, changes []string) (ocispec.ImageConfig, error) {
	cmdSet := false
	for _, ch := range changes {
		line := strings.TrimSpace(ch)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, rest := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			word, rest = line[:i], strings.TrimSpace(line[i+1:])
		}
		instr := strings.ToLower(word)
		bad := func(format string, a ...any) error {
			return &Error{Change: ch, Message: fmt.Sprintf("%s: %s", strings.ToUpper(instr), fmt.Sprintf(format, a...))}
		}
		env := func() ([]string, error) {
			ws, err := shellWords(rest, c.Env)
			if err != nil {
				return nil, bad("%v", err)
			}
			return ws, nil
		}
		switch instr {
		case "cmd", "entrypoint":
			args := execForm(rest)
			if instr == "cmd" {
				c.Cmd, cmdSet = args, true
			} else {
				c.Entrypoint = args
				if !cmdSet {
					c.Cmd = nil
				}
			}
		case "env", "label":
			pairs, err := keyValues(rest, c.Env)
			if err != nil {
				return c, bad("%v", err)
			}
			for _, kv := range pairs {
				if instr == "env" {
					c.Env = setEnv(c.Env, kv[0], kv[1])
					continue
				}
				if c.Labels == nil {
					c.Labels = map[string]string{}
				}
				c.Labels[kv[0]] = kv[1]
			}
		case "expose":
			ports, err := env()
			if err != nil {
				return c, err
			}
			if len(ports) == 0 {
				return c, bad("requires at least one argument")
			}
			for _, p := range ports {
				keys, err := exposedPorts(p)
				if err != nil {
					return c, bad("%v", err)
				}
				if c.ExposedPorts == nil {
					c.ExposedPorts = map[string]struct{}{}
				}
				for _, k := range keys {
					c.ExposedPorts[k] = struct{}{}
				}
			}
		case "volume":
			var vols []string
			if !strings.HasPrefix(rest, "[") || json.Unmarshal([]byte(rest), &vols) != nil {
				var err error
				if vols, err = env(); err != nil {
					return c, err
				}
			}
			if len(vols) == 0 {
				return c, bad("requires at least one argument")
			}
			for _, v := range vols {
				if c.Volumes == nil {
					c.Volumes = map[string]struct{}{}
				}
				c.Volumes[v] = struct{}{}
			}
		case "user", "stopsignal", "workdir":
			ws, err := env()
			if err != nil {
				return c, err
			}
			if len(ws) != 1 {
				return c, bad("requires exactly one argument")
			}
			switch instr {
			case "user":
				c.User = ws[0]
			case "stopsignal":
				c.StopSignal = ws[0]
			default:
				dir := ws[0]
				if !path.IsAbs(dir) {
					dir = path.Join("/", c.WorkingDir, dir)
				}
				c.WorkingDir = path.Clean(dir)
			}
		case "onbuild":
			return c, &Error{Change: ch, Message: "ONBUILD in a change is not supported by ctrpush (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR are)"}
		default:
			return c, &Error{Change: ch, Message: instr + " is not a valid change command"}
		}
	}
	return c, nil
}

// execForm reads CMD or ENTRYPOINT: a JSON array, else the shell form.
func execForm(rest string) []string {
	var args []string
	if strings.HasPrefix(rest, "[") && json.Unmarshal([]byte(rest), &args) == nil {
		return args
	}
	return []string{"/bin/sh", "-c", rest}
}

// keyValues reads ENV or LABEL arguments: key=value pairs (quotes and
// $VAR as a shell reads them; $VAR is its value before the instruction,
// as in a Dockerfile), or the legacy "key value" form.
func keyValues(rest string, env []string) ([][2]string, error) {
	ws, err := shellWords(rest, env)
	if err != nil {
		return nil, err
	}
	if len(ws) == 0 {
		return nil, fmt.Errorf("requires at least one argument")
	}
	if !strings.Contains(ws[0], "=") {
		key, value, _ := strings.Cut(rest, " ")
		vs, err := shellWords(strings.TrimSpace(value), env)
		if err != nil {
			return nil, err
		}
		if len(vs) == 0 {
			return nil, fmt.Errorf("%s has no value", key)
		}
		return [][2]string{{key, strings.Join(vs, " ")}}, nil
	}
	var out [][2]string
	for _, w := range ws {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func setEnv(env []string, k, v string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if name, _, _ := strings.Cut(e, "="); name != k {
			out = append(out, e)
		}
	}
	return append(out, k+"="+v)
}

func lookupEnv(env []string, k string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if name, v, _ := strings.Cut(env[i], "="); name == k {
			return v
		}
	}
	return ""
}

// shellWords splits s into words as a Dockerfile does: blanks separate
// words; single quotes keep everything; double quotes keep blanks and
// expand $VAR; a backslash escapes the next character.
func shellWords(s string, env []string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote == '\'' && ch != '\'':
			cur.WriteByte(ch)
		case ch == '\'' && quote == 0, ch == '"' && quote == 0:
			quote, inWord = ch, true
		case ch == quote:
			quote = 0
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case ch == '$' && i+1 < len(s):
			name, n := varName(s[i+1:])
			if n == 0 {
				cur.WriteByte(ch)
				inWord = true
				continue
			}
			cur.WriteString(lookupEnv(env, name))
			i += n
			inWord = true
		case (ch == ' ' || ch == '\t') && quote == 0:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unmatched %c quote", quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// varName reads the variable after a $: "NAME…" or "{NAME}"; n is how
// many bytes it took (0: not a variable).
func varName(s string) (string, int) {
	if strings.HasPrefix(s, "{") {
		end := strings.IndexByte(s, '}')
		if end < 2 {
			return "", 0
		}
		return s[1:end], end + 1
	}
	n := 0
	for n < len(s) && (s[n] == '_' || s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z' || n > 0 && s[n] >= '0' && s[n] <= '9') {
		n++
	}
	return s[:n], n
}

// exposedPorts reads an EXPOSE argument: "80", "80/udp", "8000-8002/tcp".
func exposedPorts(p string) ([]string, error) {
	ports, proto, ok := strings.Cut(p, "/")
	if !ok {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("invalid proto %q in %q", proto, p)
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	start, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("invalid port %q", p)
	}
	end := start
	if isRange {
		if end, err = strconv.ParseUint(hi, 10, 16); err != nil || end < start {
			return nil, fmt.Errorf("invalid port range %q", p)
		}
	}
	var out []string
	for n := start; n <= end; n++ {
		out = append(out, fmt.Sprintf("%d/%s", n, proto))
	}
	return out, nil
}
