package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ctrpush/ctrpush/imageservice"
)

// authKey is where docker keeps a registry's credentials.
func authKey(registry string) string {
	switch registry {
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		return dockerHubAuthKey
	}
	return registry
}

func (a *app) loginCommand() *cobra.Command {
	var user string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [-u USER] [--password-stdin] REGISTRY",
		Short: "Log in to a registry, storing the credentials where docker does",
		Long: `Check the credentials against REGISTRY and store them in $DOCKER_CONFIG/config.json
(default ~/.docker), in its credential store or helper when one is configured:
the same place 'docker login' writes, so both tools share them.`,
		Example: `  echo "$TOKEN" | ctrpush login -u ci --password-stdin registry.example.com`,
		Args:    rangeArgs(1, 1, "one registry host"),
		RunE: func(cmd *cobra.Command, args []string) error {
			registry := args[0]
			if user == "" {
				return usagef("give the user name with -u")
			}
			password, err := a.readPassword(passwordStdin)
			if err != nil {
				return err
			}
			hosts := imageservice.RegistryHosts(imageservice.HostsConfig{
				HostsDirs: imageservice.SplitHostsDirs(a.registry.hostsDir),
				Insecure:  a.registry.insecure,
				Credentials: func(string) (string, string, error) {
					return user, password, nil
				},
			})
			if err := imageservice.CheckLogin(cmd.Context(), hosts, registry); err != nil {
				return err
			}
			cf, err := dockerconfig.Load(dockerconfig.Dir())
			if err != nil {
				return fmt.Errorf("read docker config in %s: %w", dockerconfig.Dir(), err)
			}
			key := authKey(registry)
			if err := cf.GetCredentialsStore(key).Store(types.AuthConfig{ServerAddress: key, Username: user, Password: password}); err != nil {
				return fmt.Errorf("store credentials for %s: the credential store failed", registry)
			}
			if err := cf.Save(); err != nil {
				return fmt.Errorf("save %s: %w", cf.Filename, err)
			}
			fmt.Fprintln(a.stdout, "Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password (or token) from standard input")
	return cmd
}

// readPassword reads the password from stdin, or prompts on a terminal.
func (a *app) readPassword(fromStdin bool) (string, error) {
	if fromStdin {
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.stderr, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		return string(b), err
	}
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", usagef("no password: use --password-stdin or a terminal")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (a *app) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "logout REGISTRY",
		Short:   "Remove a registry's stored credentials",
		Example: `  ctrpush logout registry.example.com`,
		Args:    rangeArgs(1, 1, "one registry host"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cf, err := dockerconfig.Load(dockerconfig.Dir())
			if err != nil {
				return fmt.Errorf("read docker config in %s: %w", dockerconfig.Dir(), err)
			}
			key := authKey(args[0])
			if err := cf.GetCredentialsStore(key).Erase(key); err != nil {
				return fmt.Errorf("remove credentials for %s: the credential store failed", args[0])
			}
			if err := cf.Save(); err != nil {
				return fmt.Errorf("save %s: %w", cf.Filename, err)
			}
			fmt.Fprintf(a.stdout, "Removing login credentials for %s\n", args[0])
			return nil
		},
	}
}
