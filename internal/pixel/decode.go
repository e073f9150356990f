package pixel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/pixel/codec"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Info is the Image Pixel module of an instance (PS3.3 C.7.6.3) plus the
// identifiers needed to describe it.
type Info struct {
	TransferSyntaxUID         string
	Rows, Columns, Frames     int
	SamplesPerPixel           int
	Photometric               string // as stored in the data set
	BitsAllocated, BitsStored int
	HighBit                   int
	PixelRepresentation       int // 0 unsigned, 1 two's complement
	PlanarConfiguration       int
}

// Image is every decoded frame of an instance.
type Image struct {
	Info
	// Photometric of the decoded frames: RGB after YBR/palette conversion,
	// otherwise Info.Photometric.
	OutputPhotometric string
	Frames            []Frame
}

// Transfer syntaxes decoded here without package codec.
const (
	tsImplicitLE     = "1.2.840.10008.1.2"
	tsExplicitLE     = "1.2.840.10008.1.2.1"
	tsExplicitBE     = "1.2.840.10008.1.2.2"
	tsDeflated       = "1.2.840.10008.1.2.1.99"
	tsEncapsulatedLE = "1.2.840.10008.1.2.1.98" // Encapsulated Uncompressed Explicit VR Little Endian
	tsRLE            = "1.2.840.10008.1.2.5"
)

// Decode decodes every frame of in.
// errors: ErrNoPixelData, ErrUnsupportedTransferSyntax, ErrTruncated,
// ErrInconsistent, ErrUnsupportedPhotometric, ErrCodec.
func Decode(in *dicom.Instance) (*Image, error) {
	return DecodeItem(in.Root())
}

// DecodeItem decodes the pixel data of a data set or sequence item, e.g. an
// Icon Image Sequence (0088,0200) item, whose own Image Pixel module applies.
// errors: as Decode.
func DecodeItem(it *dicom.Item) (*Image, error) {
	pd := it.PixelData()
	if pd == nil {
		return nil, ErrNoPixelData
	}
	info, err := InfoOf(it)
	if err != nil {
		return nil, err
	}
	if pd.Tag == tag.FloatPixelData || pd.Tag == tag.DoubleFloatPixelData {
		return decodeFloat(info, pd)
	}
	img := &Image{Info: info, OutputPhotometric: info.Photometric}
	if pd.Encapsulated {
		err = decodeEncapsulated(img, it, pd)
	} else {
		err = decodeNative(img, pd)
	}
	if err != nil {
		return nil, err
	}
	if err := convertPhotometric(img, it); err != nil {
		return nil, err
	}
	return img, nil
}

// InfoOf reads and validates the Image Pixel module of it.
// errors: ErrInconsistent (zero Rows/Columns, Bits Stored > Bits Allocated,
// High Bit out of range, unsupported Bits Allocated, bad Samples per Pixel).
func InfoOf(it *dicom.Item) (Info, error) {
	in := Info{
		TransferSyntaxUID:   it.TransferSyntaxUID,
		Rows:                it.Int(tag.Rows, 0),
		Columns:             it.Int(tag.Columns, 0),
		Frames:              it.Int(tag.NumberOfFrames, 1),
		SamplesPerPixel:     it.Int(tag.SamplesPerPixel, 1),
		Photometric:         it.String(tag.PhotometricInterpretation),
		BitsAllocated:       it.Int(tag.BitsAllocated, 0),
		PixelRepresentation: it.Int(tag.PixelRepresentation, 0),
		PlanarConfiguration: it.Int(tag.PlanarConfiguration, 0),
	}
	pd := it.PixelData()
	if pd != nil && pd.Tag == tag.FloatPixelData && in.BitsAllocated == 0 {
		in.BitsAllocated = 32
	}
	if pd != nil && pd.Tag == tag.DoubleFloatPixelData && in.BitsAllocated == 0 {
		in.BitsAllocated = 64
	}
	in.BitsStored = it.Int(tag.BitsStored, in.BitsAllocated)
	in.HighBit = it.Int(tag.HighBit, in.BitsStored-1)
	if in.Frames < 1 {
		in.Frames = 1
	}
	if in.Photometric == "" {
		in.Photometric = "MONOCHROME2"
		if in.SamplesPerPixel == 3 {
			in.Photometric = "RGB"
		}
	}
	switch {
	case in.Rows <= 0 || in.Columns <= 0:
		return in, fmt.Errorf("%w: Rows %d, Columns %d", ErrInconsistent, in.Rows, in.Columns)
	case in.SamplesPerPixel != 1 && in.SamplesPerPixel != 3 && in.SamplesPerPixel != 4:
		return in, fmt.Errorf("%w: Samples per Pixel %d", ErrInconsistent, in.SamplesPerPixel)
	case in.BitsAllocated != 1 && in.BitsAllocated != 8 && in.BitsAllocated != 16 && in.BitsAllocated != 32 && in.BitsAllocated != 64:
		return in, fmt.Errorf("%w: Bits Allocated %d", ErrInconsistent, in.BitsAllocated)
	case in.BitsStored < 1 || in.BitsStored > in.BitsAllocated:
		return in, fmt.Errorf("%w: Bits Stored %d with Bits Allocated %d", ErrInconsistent, in.BitsStored, in.BitsAllocated)
	case in.HighBit < in.BitsStored-1 || in.HighBit >= in.BitsAllocated:
		return in, fmt.Errorf("%w: High Bit %d with Bits Stored %d, Bits Allocated %d", ErrInconsistent, in.HighBit, in.BitsStored, in.BitsAllocated)
	case in.PixelRepresentation != 0 && in.PixelRepresentation != 1:
		return in, fmt.Errorf("%w: Pixel Representation %d", ErrInconsistent, in.PixelRepresentation)
	}
	return in, nil
}

// samplesPerFrame returns the stored samples in one native frame; for
// YBR_FULL_422 two chroma samples are shared by each pair of pixels.
func (in *Info) storedSamples() int {
	n := in.Rows * in.Columns * in.SamplesPerPixel
	if in.Photometric == "YBR_FULL_422" && in.SamplesPerPixel == 3 {
		n = in.Rows * in.Columns * 2
	}
	return n
}

// decodeNative splits native pixel data into frames (PS3.5 8.1.1: 1-bit
// frames are packed contiguously, LSB first).
func decodeNative(img *Image, pd *dicom.PixelData) error {
	in := &img.Info
	if in.BitsAllocated == 64 {
		return fmt.Errorf("%w: Bits Allocated 64 requires Double Float Pixel Data", ErrInconsistent)
	}
	if in.Photometric == "YBR_FULL_422" && in.Columns%2 != 0 {
		return fmt.Errorf("%w: YBR_FULL_422 with odd Columns %d", ErrInconsistent, in.Columns)
	}
	samples := int64(in.storedSamples())
	frameBits := samples * int64(in.BitsAllocated)
	var need int64
	if in.BitsAllocated == 1 {
		need = (frameBits*int64(in.Frames) + 7) / 8
	} else {
		need = frameBits / 8 * int64(in.Frames)
	}
	data := pd.Native
	if int64(len(data)) < need {
		return fmt.Errorf("%w: %d frame(s) of %dx%dx%d at %d bits needs %d bytes, has %d",
			ErrTruncated, in.Frames, in.Rows, in.Columns, in.SamplesPerPixel, in.BitsAllocated, need, len(data))
	}
	data = data[:need]
	bo := binary.ByteOrder(binary.LittleEndian)
	if pd.BigEndian {
		bo = binary.BigEndian
		if in.BitsAllocated <= 8 && pd.VR == "OW" {
			// 8-bit samples in 16-bit words: the word swap reorders samples.
			sw := make([]byte, len(data))
			for i := 0; i+1 < len(data); i += 2 {
				sw[i], sw[i+1] = data[i+1], data[i]
			}
			if len(data)%2 == 1 {
				sw[len(data)-1] = data[len(data)-1]
			}
			data = sw
		}
	}
	img.Frames = make([]Frame, in.Frames)
	for f := range img.Frames {
		var err error
		if in.BitsAllocated == 1 {
			img.Frames[f], err = unpackBits(in, data, int64(f)*frameBits)
		} else {
			n := frameBits / 8
			img.Frames[f], err = unpack(in, data[int64(f)*n:int64(f+1)*n], bo, true)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unpackBits reads one 1-bit frame starting at bit offset off.
func unpackBits(in *Info, data []byte, off int64) (Frame, error) {
	n := in.storedSamples()
	fr := Frame{Rows: in.Rows, Columns: in.Columns, SamplesPerPixel: in.SamplesPerPixel, U8: make([]uint8, n)}
	for i := 0; i < n; i++ {
		k := off + int64(i)
		fr.U8[i] = (data[k>>3] >> (k & 7)) & 1
	}
	return fr, nil
}

// unpack converts one frame of bytes in byte order bo to typed samples:
// de-planarise (Planar Configuration 1), mask to Bits Stored at High Bit
// (shifted when aligned is true: native data keeps High Bit's position;
// codec output is already aligned at bit 0) and sign-extend.
func unpack(in *Info, src []byte, bo binary.ByteOrder, native bool) (Frame, error) {
	n := in.storedSamples()
	spp := in.SamplesPerPixel
	fr := Frame{Rows: in.Rows, Columns: in.Columns, SamplesPerPixel: spp}
	planar := native && in.PlanarConfiguration == 1 && spp > 1 && n == in.Rows*in.Columns*spp
	pixels := n / spp
	// idx maps stored sample i to its pixel-interleaved position.
	idx := func(i int) int { return i }
	if planar {
		idx = func(i int) int { return (i%pixels)*spp + i/pixels }
	}
	shift := uint(0)
	if native {
		shift = uint(in.HighBit + 1 - in.BitsStored)
	}
	bs := uint(in.BitsStored)
	signed := in.PixelRepresentation == 1
	switch in.BitsAllocated {
	case 8:
		raw := make([]uint8, n)
		if planar {
			for i := 0; i < n; i++ {
				raw[idx(i)] = src[i]
			}
		} else {
			copy(raw, src[:n])
		}
		maskSign(raw, shift, bs, 8, signed)
		if signed {
			fr.I8 = make([]int8, n)
			for i, v := range raw {
				fr.I8[i] = int8(v)
			}
		} else {
			fr.U8 = raw
		}
	case 16:
		// One allocation per frame: the signed slice is viewed as uint16.
		var raw []uint16
		if signed {
			fr.I16 = make([]int16, n)
			raw = unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(fr.I16))), n)
		} else {
			fr.U16 = make([]uint16, n)
			raw = fr.U16
		}
		src = src[:2*n]
		switch {
		case planar:
			for i := 0; i < n; i++ {
				raw[idx(i)] = bo.Uint16(src[2*i:])
			}
		case bo == nativeOrder():
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(raw))), 2*n), src)
		default:
			for i := range raw {
				raw[i] = bo.Uint16(src[2*i:])
			}
		}
		maskSign(raw, shift, bs, 16, signed)
	case 32:
		var raw []uint32
		if signed {
			fr.I32 = make([]int32, n)
			raw = unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(fr.I32))), n)
		} else {
			fr.U32 = make([]uint32, n)
			raw = fr.U32
		}
		src = src[:4*n]
		for i := 0; i < n; i++ {
			raw[idx(i)] = bo.Uint32(src[4*i:])
		}
		maskSign(raw, shift, bs, 32, signed)
	default:
		return fr, fmt.Errorf("%w: Bits Allocated %d", ErrInconsistent, in.BitsAllocated)
	}
	return fr, nil
}

// nativeOrder is the host byte order (samples are copied, not converted,
// when the data matches it).
func nativeOrder() binary.ByteOrder {
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return binary.LittleEndian
	}
	return binary.BigEndian
}

// maskSign keeps Bits Stored bits at High Bit (raw >> shift) and, for
// Pixel Representation 1, sign-extends them to the full word (PS3.5 8.1.1).
func maskSign[T uint8 | uint16 | uint32](raw []T, shift, bs, width uint, signed bool) {
	if bs >= width && shift == 0 {
		return
	}
	mask := T(1)<<bs - 1
	sign := T(1) << (bs - 1)
	for i, v := range raw {
		v = (v >> shift) & mask
		if signed && v&sign != 0 {
			v |= ^mask
		}
		raw[i] = v
	}
}

// decodeFloat decodes Float (OF) or Double Float (OD) Pixel Data.
func decodeFloat(info Info, pd *dicom.PixelData) (*Image, error) {
	img := &Image{Info: info, OutputPhotometric: info.Photometric}
	size := 4
	if pd.Tag == tag.DoubleFloatPixelData {
		size = 8
	}
	n := info.Rows * info.Columns * info.SamplesPerPixel
	need := int64(n) * int64(size) * int64(info.Frames)
	if pd.Encapsulated || int64(len(pd.Native)) < need {
		return nil, fmt.Errorf("%w: float pixel data needs %d bytes, has %d", ErrTruncated, need, len(pd.Native))
	}
	// Values were converted to little endian by package dicom (OF/OD).
	for f := 0; f < info.Frames; f++ {
		fr := Frame{Rows: info.Rows, Columns: info.Columns, SamplesPerPixel: info.SamplesPerPixel}
		src := pd.Native[f*n*size:]
		if size == 4 {
			fr.F32 = make([]float32, n)
			for i := range fr.F32 {
				fr.F32[i] = float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
			}
		} else {
			fr.F64 = make([]float64, n)
			for i := range fr.F64 {
				fr.F64[i] = float64frombits(binary.LittleEndian.Uint64(src[8*i:]))
			}
		}
		img.Frames = append(img.Frames, fr)
	}
	return img, nil
}

// decodeEncapsulated splits fragments into frames and decodes each with RLE
// or package codec.
func decodeEncapsulated(img *Image, it *dicom.Item, pd *dicom.PixelData) error {
	in := &img.Info
	ts := in.TransferSyntaxUID
	switch ts {
	case tsImplicitLE, tsExplicitLE, tsExplicitBE, tsDeflated:
		return fmt.Errorf("%w: encapsulated pixel data with native transfer syntax %s", ErrInconsistent, ts)
	}
	eot, eotLen := it.ExtendedOffsetTable()
	frames, err := splitFrames(pd, in.Frames, eot, eotLen, ts)
	if err != nil {
		return err
	}
	img.Frames = make([]Frame, in.Frames)
	var scratch []byte
	for f, src := range frames {
		switch ts {
		case tsEncapsulatedLE:
			need := in.storedSamples() * in.BitsAllocated / 8
			if len(src) < need {
				return fmt.Errorf("%w: frame %d needs %d bytes, has %d", ErrTruncated, f, need, len(src))
			}
			img.Frames[f], err = unpack(in, src, binary.LittleEndian, true)
		case tsRLE:
			scratch, err = decodeRLE(in, src, scratch)
			if err != nil {
				return fmt.Errorf("frame %d: %w", f, err)
			}
			// RLE keeps whole Bits Allocated words: mask like native data.
			p := *in
			p.PlanarConfiguration = 0
			img.Frames[f], err = unpack(&p, scratch, binary.LittleEndian, true)
		default:
			img.Frames[f], err = decodeCodec(img, f, src)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeCodec decodes one frame through package codec and masks the result.
func decodeCodec(img *Image, f int, src []byte) (Frame, error) {
	in := &img.Info
	if in.BitsAllocated == 1 || in.BitsAllocated == 64 {
		return Frame{}, fmt.Errorf("%w: Bits Allocated %d with transfer syntax %s", ErrInconsistent, in.BitsAllocated, in.TransferSyntaxUID)
	}
	res, err := codec.Decode(in.TransferSyntaxUID, src, codec.Params{
		Rows: in.Rows, Columns: in.Columns, SamplesPerPixel: in.SamplesPerPixel,
		BitsAllocated: in.BitsAllocated, BitsStored: in.BitsStored,
		Signed: in.PixelRepresentation == 1, Photometric: in.Photometric,
	})
	if errors.Is(err, codec.ErrUnsupported) {
		return Frame{}, fmt.Errorf("%w %s: %w", ErrUnsupportedTransferSyntax, in.TransferSyntaxUID, err)
	}
	if err != nil {
		return Frame{}, fmt.Errorf("%w: frame %d (%s): %w", ErrCodec, f, in.TransferSyntaxUID, err)
	}
	p := *in
	p.PlanarConfiguration = 0
	if p.Photometric == "YBR_FULL_422" || p.Photometric == "YBR_PARTIAL_422" || p.Photometric == "YBR_PARTIAL_420" {
		p.Photometric = "YBR_FULL" // codec output is full resolution
	}
	need := p.storedSamples() * (p.BitsAllocated / 8)
	if len(res.Data) < need {
		return Frame{}, fmt.Errorf("%w: frame %d: codec returned %d bytes, needs %d", ErrCodec, f, len(res.Data), need)
	}
	fr, err := unpack(&p, res.Data, binary.LittleEndian, false)
	if err != nil {
		return Frame{}, err
	}
	if res.Photometric != "" {
		img.OutputPhotometric = res.Photometric
	}
	return fr, nil
}

// splitFrames returns each frame's codestream (PS3.5 A.4): by the Extended
// Offset Table, by the Basic Offset Table, one fragment per frame, all
// fragments for a single frame, or by codestream start markers.
// errors: ErrInconsistent.
func splitFrames(pd *dicom.PixelData, nframes int, eot, eotLen []uint64, ts string) ([][]byte, error) {
	frags := pd.Fragments
	if len(frags) == 0 {
		return nil, fmt.Errorf("%w: encapsulated pixel data has no fragments", ErrInconsistent)
	}
	if nframes > len(frags) {
		return nil, fmt.Errorf("%w: %d frames but only %d fragments", ErrInconsistent, nframes, len(frags))
	}
	// Item offsets relative to the first fragment item (8-byte headers).
	offs := make([]uint64, len(frags)+1)
	for i, f := range frags {
		offs[i+1] = offs[i] + 8 + uint64(len(f))
	}
	byOffset := func(starts []uint64) ([][]byte, error) {
		out := make([][]byte, nframes)
		k := 0
		for f := 0; f < nframes; f++ {
			for k < len(frags) && offs[k] < starts[f] {
				k++
			}
			if k >= len(frags) || offs[k] != starts[f] {
				return nil, fmt.Errorf("%w: frame %d offset %d is not a fragment boundary", ErrInconsistent, f, starts[f])
			}
			end := uint64(1<<63 - 1)
			if f+1 < nframes {
				end = starts[f+1]
			}
			j := k
			for j < len(frags) && offs[j] < end {
				j++
			}
			out[f] = concat(frags[k:j])
		}
		return out, nil
	}
	switch {
	case len(eot) > 0:
		if len(eot) != nframes {
			return nil, fmt.Errorf("%w: Extended Offset Table has %d entries for %d frames", ErrInconsistent, len(eot), nframes)
		}
		for i := 1; i < len(eot); i++ {
			if eot[i] <= eot[i-1] {
				return nil, fmt.Errorf("%w: Extended Offset Table not increasing", ErrInconsistent)
			}
		}
		out, err := byOffset(eot)
		if err != nil {
			return nil, err
		}
		if len(eotLen) == nframes {
			for f := range out {
				if eotLen[f] < uint64(len(out[f])) {
					out[f] = out[f][:eotLen[f]]
				}
			}
		}
		return out, nil
	case len(pd.BasicOffsetTable) > 0:
		if len(pd.BasicOffsetTable) != nframes {
			return nil, fmt.Errorf("%w: Basic Offset Table has %d entries for %d frames", ErrInconsistent, len(pd.BasicOffsetTable), nframes)
		}
		starts := make([]uint64, nframes)
		for i, o := range pd.BasicOffsetTable {
			starts[i] = uint64(o)
			if i > 0 && starts[i] <= starts[i-1] {
				return nil, fmt.Errorf("%w: Basic Offset Table not increasing", ErrInconsistent)
			}
		}
		return byOffset(starts)
	case len(frags) == nframes:
		return frags, nil
	case nframes == 1:
		return [][]byte{concat(frags)}, nil
	}
	// No offset table, more fragments than frames: frames start with a
	// codestream start marker.
	var starts []int
	for i, f := range frags {
		if startsCodestream(f, ts) {
			starts = append(starts, i)
		}
	}
	if len(starts) != nframes || starts[0] != 0 {
		return nil, fmt.Errorf("%w: %d frames in %d fragments without offset table, and %d fragments start a codestream", ErrInconsistent, nframes, len(frags), len(starts))
	}
	out := make([][]byte, nframes)
	for f, s := range starts {
		e := len(frags)
		if f+1 < nframes {
			e = starts[f+1]
		}
		out[f] = concat(frags[s:e])
	}
	return out, nil
}

// startsCodestream reports whether a fragment begins a JPEG (SOI FFD8),
// JPEG 2000 (SOC FF4F, or a JP2 signature box) codestream.
func startsCodestream(b []byte, ts string) bool {
	if len(b) < 2 {
		return false
	}
	if b[0] == 0xFF && (b[1] == 0xD8 || b[1] == 0x4F) {
		return true
	}
	return len(b) >= 12 && string(b[4:8]) == "jP  "
}

func concat(frags [][]byte) []byte {
	if len(frags) == 1 {
		return frags[0]
	}
	n := 0
	for _, f := range frags {
		n += len(f)
	}
	out := make([]byte, 0, n)
	for _, f := range frags {
		out = append(out, f...)
	}
	return out
}

func float32frombits(b uint32) float32 { return math.Float32frombits(b) }
func float64frombits(b uint64) float64 { return math.Float64frombits(b) }
