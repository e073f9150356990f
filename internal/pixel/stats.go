package pixel

import "math"

// SampleStats summarises every sample of every frame of an image.
type SampleStats struct {
	Min, Max float64
	// Sum is exact for integer samples up to 2^53 in magnitude (accumulated
	// in int64); float samples are summed in float64.
	Sum   float64
	Count int
}

// Stats returns min, max and sum over all frames and samples of img's
// values (stored values for monochrome images, RGB after conversion), the
// convention of `radflow inspect` and of the shared EXPECTED.md.
func Stats(img *Image) SampleStats {
	st := SampleStats{Min: math.Inf(1), Max: math.Inf(-1)}
	var isum int64
	for fi := range img.Frames {
		f := &img.Frames[fi]
		switch {
		case f.U8 != nil:
			isum += intStats(f.U8, &st)
		case f.I8 != nil:
			isum += intStats(f.I8, &st)
		case f.U16 != nil:
			isum += intStats(f.U16, &st)
		case f.I16 != nil:
			isum += intStats(f.I16, &st)
		case f.U32 != nil:
			isum += intStats(f.U32, &st)
		case f.I32 != nil:
			isum += intStats(f.I32, &st)
		default:
			for i, n := 0, f.Len(); i < n; i++ {
				v := f.At(i)
				st.Min, st.Max, st.Sum = math.Min(st.Min, v), math.Max(st.Max, v), st.Sum+v
			}
			st.Count += f.Len()
		}
	}
	st.Sum += float64(isum)
	if st.Count == 0 {
		st.Min, st.Max = 0, 0
	}
	return st
}

type integer interface {
	~uint8 | ~int8 | ~uint16 | ~int16 | ~uint32 | ~int32
}

func intStats[T integer](s []T, st *SampleStats) int64 {
	if len(s) == 0 {
		return 0
	}
	mn, mx := s[0], s[0]
	var sum int64
	for _, v := range s {
		if v < mn {
			mn = v
		}
		if v > mx {
			mx = v
		}
		sum += int64(v)
	}
	st.Min = math.Min(st.Min, float64(mn))
	st.Max = math.Max(st.Max, float64(mx))
	st.Count += len(s)
	return sum
}
