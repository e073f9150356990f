package codec

func decodeJPEGLS(src []byte, p Params) (Result, error) { return Result{}, ErrUnsupported }
