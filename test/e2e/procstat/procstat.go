// Package procstat reads a process's memory and CPU from /proc, for the harnesses that measure
// capwatch and its peers (hostile load, scale).
package procstat

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Sample is one reading of /proc/<pid>/status and /proc/<pid>/stat.
type Sample struct {
	RSS, HWM   int64 // VmRSS and VmHWM, bytes
	CPUSeconds float64
}

// clockTicks is sysconf(_SC_CLK_TCK), 100 on every Linux this runs on.
const clockTicks = 100

// Read samples process pid.
func Read(pid int) (Sample, error) {
	var s Sample
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			s.RSS = kb * 1024
		case "VmHWM:":
			s.HWM = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name may hold blanks: the fields that count come after its ')'.
	rest := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(rest) > 12 {
		utime, _ := strconv.ParseFloat(rest[11], 64)
		stime, _ := strconv.ParseFloat(rest[12], 64)
		s.CPUSeconds = (utime + stime) / clockTicks
	}
	return s, nil
}

// MiB formats bytes as mebibytes.
func MiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
