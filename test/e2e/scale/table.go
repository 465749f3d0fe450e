package scale

import (
	"fmt"
	"strings"
	"time"

	"capwatch.io/test/e2e/procstat"
)

// TargetPods is the size DESIGN §7's targets are stated for.
const TargetPods = 100_000

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func (f *Figures) peer(mode string) *PeerFigures {
	for i := range f.Peers {
		if f.Peers[i].Mode == mode {
			return &f.Peers[i]
		}
	}
	return nil
}

// Table prints one column per size.
func Table(all []*Figures) string {
	var b strings.Builder
	rows := [][]string{{"figure"}}
	for _, f := range all {
		rows[0] = append(rows[0], fmt.Sprintf("%d Pods", f.Pods))
	}
	add := func(name string, cell func(f *Figures) string) {
		row := []string{name}
		for _, f := range all {
			row = append(row, cell(f))
		}
		rows = append(rows, row)
	}
	add("workloads / namespaces", func(f *Figures) string { return fmt.Sprintf("%d / %d", f.Workloads, f.Namespaces) })
	add("bytes a Pod as listed (JSON)", func(f *Figures) string { return fmt.Sprint(f.PodBytes) })
	add("populate (this size's share)", func(f *Figures) string { return seconds(f.Populate) })
	for _, mode := range []string{"full", "strip"} {
		label := map[string]string{"full": "client-go informer", "strip": "client-go, managedFields stripped"}[mode]
		if all[0].peer(mode) == nil {
			continue
		}
		peerCell := func(get func(p *PeerFigures) string) func(f *Figures) string {
			return func(f *Figures) string {
				if p := f.peer(mode); p != nil {
					return get(p)
				}
				return "—"
			}
		}
		add(label+": sync", peerCell(func(p *PeerFigures) string { return seconds(p.SyncWall) }))
		add(label+": CPU to sync", peerCell(func(p *PeerFigures) string { return fmt.Sprintf("%.2f s", p.SyncCPU) }))
		add(label+": VmHWM / VmRSS after GC", peerCell(func(p *PeerFigures) string {
			return procstat.MiB(p.HWM) + " / " + procstat.MiB(p.RSSAfterGC)
		}))
	}
	add("capwatch: ready", func(f *Figures) string { return seconds(f.Ready) })
	add("capwatch: CPU to ready", func(f *Figures) string { return fmt.Sprintf("%.2f s", f.ReadyCPU) })
	add("capwatch: VmRSS at ready", func(f *Figures) string { return procstat.MiB(f.ReadyRSS) })
	add("capwatch: every report written", func(f *Figures) string {
		return fmt.Sprintf("%s (%.0f created)", seconds(f.AllReports), f.ReportsCreated)
	})
	add("capwatch: CPU to every report", func(f *Figures) string { return fmt.Sprintf("%.2f s", f.AllReportsCPU) })
	add("capwatch: VmHWM / VmRSS steady", func(f *Figures) string {
		return procstat.MiB(f.PeakHWM) + " / " + procstat.MiB(f.SteadyRSS)
	})
	add("capwatch: /metrics series, scrape (median of 5)", func(f *Figures) string {
		return fmt.Sprintf("%d, %d ms (%d KiB)", f.Series, f.ScrapeMedian.Milliseconds(), f.ScrapeBytes/1024)
	})
	add("restart: ready / CPU to ready", func(f *Figures) string {
		return fmt.Sprintf("%s / %.2f s", seconds(f.Restart), f.RestartCPU)
	})
	add("restart: every workload reconciled", func(f *Figures) string { return seconds(f.RestartComplete) })
	add("restart: report writes / VmHWM", func(f *Figures) string {
		return fmt.Sprintf("%.0f / %s", f.RestartWrites, procstat.MiB(f.RestartHWM))
	})
	add("ratio to the informer: ready, CPU, VmHWM", func(f *Figures) string {
		p := f.peer("full")
		if p == nil || f.Ready == 0 || f.ReadyCPU == 0 || f.PeakHWM == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f×, %.1f×, %.1f×", p.SyncWall.Seconds()/f.Ready.Seconds(), p.SyncCPU/f.ReadyCPU,
			float64(p.HWM)/float64(f.PeakHWM))
	})
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len([]rune(cell)))
		}
	}
	for n, row := range rows {
		for i, cell := range row {
			pad := widths[i] - len([]rune(cell))
			if i == 0 {
				fmt.Fprintf(&b, "| %s%s ", cell, strings.Repeat(" ", pad))
			} else {
				fmt.Fprintf(&b, "| %s%s ", strings.Repeat(" ", pad), cell)
			}
		}
		b.WriteString("|\n")
		if n == 0 {
			for i := range row {
				fmt.Fprintf(&b, "|%s", strings.Repeat("-", widths[i]+2))
			}
			b.WriteString("|\n")
		}
	}
	b.WriteString(Targets(all[len(all)-1]))
	return b.String()
}

// Targets prints the largest size's figures against DESIGN §7.
func Targets(f *Figures) string {
	var b strings.Builder
	scope := ""
	if f.Pods != TargetPods {
		scope = fmt.Sprintf(" (measured at %d Pods; the targets are for %d)", f.Pods, TargetPods)
	}
	fmt.Fprintf(&b, "\ntargets%s:\n", scope)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	p := f.peer("full")
	line := func(name, got, target string, ok bool) {
		fmt.Fprintf(&b, "  %-34s %-28s target %-40s %s\n", name, got, target, verdict(ok))
	}
	readyOK, cpuOK, memOK := f.Ready <= 8*time.Second, f.ReadyCPU <= 2, f.PeakHWM <= 100<<20
	readyRatio, cpuRatio, memRatio := "", "", ""
	if p != nil {
		readyRatio = fmt.Sprintf(", ≥ 2× the informer's %s", seconds(p.SyncWall))
		readyOK = readyOK && 2*f.Ready <= p.SyncWall
		cpuRatio = fmt.Sprintf(", ≥ 9× less than %.1f s", p.SyncCPU)
		cpuOK = cpuOK && 9*f.ReadyCPU <= p.SyncCPU
		memRatio = fmt.Sprintf(", ≥ 20× less than %s", procstat.MiB(p.HWM))
		memOK = memOK && 20*f.PeakHWM <= p.HWM
	}
	line("time to ready", seconds(f.Ready), "≤ 8 s"+readyRatio, readyOK)
	line("CPU to ready", fmt.Sprintf("%.2f s", f.ReadyCPU), "≤ 2 s"+cpuRatio, cpuOK)
	line("VmHWM, reports cached", procstat.MiB(f.PeakHWM), "≤ 100 MiB"+memRatio, memOK)
	line("restart writes", fmt.Sprintf("%.0f", f.RestartWrites), "0", f.RestartWrites == 0)
	line("restart ready", seconds(f.Restart), "as fast as the first start ("+seconds(f.Ready)+")",
		f.Restart <= f.Ready+f.Ready/10)
	line("/metrics", fmt.Sprintf("%d series, %d ms", f.Series, f.ScrapeMedian.Milliseconds()), "≤ 10,000 series, < 50 ms",
		f.Series <= 10_000 && f.ScrapeMedian < 50*time.Millisecond)
	return b.String()
}
