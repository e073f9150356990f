package codec

func decodeJ2K(src []byte, p Params) (Result, error) { return Result{}, ErrUnsupported }
