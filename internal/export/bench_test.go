package export

import (
	"context"
	"testing"

	"github.com/radflow/radflow/internal/dimse"
)

// benchExport exports the three-instance MR study (about 430 KB) per
// iteration to radflow's own SCP on loopback, one association each.
func benchExport(b *testing.B, external bool) {
	files := mrStudy(b)
	src := newSource(b, files...)
	g := startGoSCP(b, dimse.Config{MemoryDataSetLimit: 1 << 20})
	e := newExporter(b, config(b, g.addr(), "GOPACS", external, ""), src, nil)
	var bytes int64
	for _, r := range src.refs {
		bytes += r.Size
	}
	b.SetBytes(bytes)
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
		if err != nil || res.Sent != 3 {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

func BenchmarkExportStudyInternal(b *testing.B) { benchExport(b, false) }
func BenchmarkExportStudyExternal(b *testing.B) { benchExport(b, true) }
