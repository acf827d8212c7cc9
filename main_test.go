package main

import (
	"encoding/json"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeFile is the part of docker-compose.yml these tests read.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

const image = "picstats:local"

// containerPaths maps the container's paths back to the repository, as the
// image (COPY images/ /images/) and the compose volumes lay them out.
func containerPaths(args []string, volumes []string) []string {
	mounts := map[string]string{"/images": "images"}
	for _, v := range volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			mounts[parts[1]] = strings.TrimPrefix(parts[0], "./")
		}
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if local, ok := mounts[a]; ok {
			out[i] = local
		}
	}
	return out
}

// checkCommand fails unless args is a real subcommand with real, valid flags.
func checkCommand(t *testing.T, where string, args []string) {
	t.Helper()
	if len(args) == 0 {
		t.Fatalf("%s: no command", where)
	}
	r, ok := roles[args[0]]
	if !ok {
		t.Fatalf("%s: %q is not a picstats subcommand", where, args[0])
	}
	if _, err := parseFlags(args[0], r.summary, args[1:], io.Discard, io.Discard); err != nil {
		t.Errorf("%s: picstats %s: %v", where, strings.Join(args, " "), err)
	}
}

// TestComposeRunsRealSubcommands checks every command docker-compose.yml
// runs with the picstats image against the binary's own flag parser, since
// no Docker engine is available to run them.
func TestComposeRunsRealSubcommands(t *testing.T) {
	data, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	checked := 0
	for name, svc := range c.Services {
		if svc.Image != image {
			continue
		}
		checked++
		t.Setenv("KAFKA_BROKER", svc.Environment["KAFKA_BROKER"])
		if svc.Environment["KAFKA_BROKER"] != "kafka:9092" {
			t.Errorf("service %s: KAFKA_BROKER=%q, want the internal listener kafka:9092", name, svc.Environment["KAFKA_BROKER"])
		}
		checkCommand(t, "service "+name, containerPaths(svc.Command, svc.Volumes))
		if hc := svc.Healthcheck.Test; len(hc) > 0 {
			if len(hc) < 3 || hc[0] != "CMD" || hc[1] != "/usr/local/bin/picstats" {
				t.Errorf("service %s: health check %v does not run the picstats binary of the image", name, hc)
				continue
			}
			checkCommand(t, "health check of "+name, hc[2:])
		}
	}
	if checked < 4 {
		t.Fatalf("found %d services with image %s, want datafeed, processor, api and tail", checked, image)
	}
}

// TestDockerfileRunsARealSubcommand checks the image's entry point and
// default command.
func TestDockerfileRunsARealSubcommand(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	entry := regexp.MustCompile(`(?m)^ENTRYPOINT (\[.*\])$`).FindSubmatch(data)
	cmd := regexp.MustCompile(`(?m)^CMD (\[.*\])$`).FindSubmatch(data)
	if entry == nil || cmd == nil {
		t.Fatal("Dockerfile has no exec-form ENTRYPOINT and CMD")
	}
	var entryArgs, cmdArgs []string
	if err := json.Unmarshal(entry[1], &entryArgs); err != nil || len(entryArgs) != 1 || entryArgs[0] != "/usr/local/bin/picstats" {
		t.Fatalf("ENTRYPOINT %s: want [\"/usr/local/bin/picstats\"]", entry[1])
	}
	if err := json.Unmarshal(cmd[1], &cmdArgs); err != nil {
		t.Fatalf("CMD %s: %v", cmd[1], err)
	}
	t.Setenv("KAFKA_BROKER", "")
	checkCommand(t, "Dockerfile CMD", containerPaths(cmdArgs, nil))
	if !regexp.MustCompile(`(?m)^USER nonroot`).Match(data) {
		t.Error("the final image does not run as a non-root user")
	}
}

// TestREADMEWalkthroughIsTheCode checks that the "Adding a statistic"
// walk-through shows exactly the statistic and test that stats/ holds, so
// following the README builds what the repository runs.
func TestREADMEWalkthroughIsTheCode(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Adding a statistic")
	if !ok {
		t.Fatal(`README has no "## Adding a statistic" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var blocks []string
	for _, part := range strings.Split(section, "```go\n")[1:] {
		code, _, _ := strings.Cut(part, "```")
		blocks = append(blocks, code)
	}
	files := []string{"stats/latest_registration.go", "stats/latest_registration_test.go"}
	if len(blocks) != len(files) {
		t.Fatalf("the walk-through has %d Go blocks, want %d (%v)", len(blocks), len(files), files)
	}
	for i, f := range files {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if blocks[i] != string(want) {
			t.Errorf("README's block %d differs from %s", i+1, f)
		}
	}
}
