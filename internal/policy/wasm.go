package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	opacompile "github.com/open-policy-agent/opa/v1/compile"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The WebAssembly evaluator. The same Rego modules are compiled by OPA's
// own compiler to a Wasm module (what `opa build -t wasm` produces: OPA's
// planner plus its C runtime of builtins) and run by wazero, through the
// OPA Wasm ABI 1.2 one-shot export opa_eval: input JSON in, result JSON
// out. It decides exactly what the topdown interpreter decides (a
// differential test runs both over the whole role × action × context
// matrix) in about a third of the time and a tenth of the allocations,
// which is what brings the decision p99 under 100 µs.
//
// Builtins that OPA's Wasm runtime does not implement natively (sprintf,
// time, crypto, http.send, ...) would be host calls; this evaluator
// implements none of them, so a policy whose module imports any is run by
// topdown instead (ErrWasmHostBuiltins, logged at load). The shipped
// policy builds its reasons with concat for that reason.

// wasmEntrypoint is Query as an OPA entrypoint path.
const wasmEntrypoint = "radflow/authz/decision"

// ErrWasmHostBuiltins: the policy calls builtins the Wasm runtime lacks.
var ErrWasmHostBuiltins = errors.New("policy: policy needs builtins the Wasm evaluator does not provide")

// wasmMaxPages bounds a VM's linear memory (64 KiB pages): 64 MiB.
const wasmMaxPages = 1024

// wasmPolicy is one compiled policy: the module, compiled once, and a pool
// of instances. A wazero module instance is single-threaded, so each
// concurrent evaluation takes one; there are at most GOMAXPROCS, created
// on first use.
type wasmPolicy struct {
	raw     []byte
	cache   wazero.CompilationCache
	memMin  uint32
	entry   int32
	pool    chan *wasmVM
	created atomic.Int32
	limit   int32
}

// Cancellation: ctx is checked before an evaluation starts, not during it.
// wazero can interrupt running code only with WithCloseOnContextDone, which
// made every decision four times slower (measured); the shipped policy
// has no loop that depends on more than the bounded input (Input limits),
// and a policy directory is written by administrators, not callers.

// wasmVM is one instance: its own runtime (the module imports "env" by
// name, so instances cannot share one), memory and heap base.
type wasmVM struct {
	rt       wazero.Runtime
	mod      api.Module
	mem      api.Memory
	eval     api.Function
	dataAddr uint64
	base     uint64 // heap pointer after init: input is written here
	in       bytes.Buffer
	enc      *json.Encoder
	stack    [7]uint64
}

// compileWasm compiles srcs to Wasm and instantiates one VM to check it.
// errors: ErrCompile, ErrWasmHostBuiltins.
func compileWasm(ctx context.Context, srcs []source) (*wasmPolicy, error) {
	b := &bundle.Bundle{Data: map[string]any{}}
	for _, s := range srcs {
		m, err := ast.ParseModuleWithOpts(s.name, s.text, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCompile, err)
		}
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: s.name, Path: s.name, Raw: []byte(s.text), Parsed: m})
	}
	c := opacompile.New().WithTarget(opacompile.TargetWasm).WithEntrypoints(wasmEntrypoint).
		WithBundle(b).WithRegoVersion(ast.RegoV1).WithOutput(io.Discard)
	if err := c.Build(ctx); err != nil {
		return nil, fmt.Errorf("%w: wasm: %w", ErrCompile, err)
	}
	out := c.Bundle()
	if out == nil || len(out.WasmModules) != 1 {
		return nil, fmt.Errorf("%w: wasm: compiler produced no module", ErrCompile)
	}
	p := &wasmPolicy{raw: out.WasmModules[0].Raw, cache: wazero.NewCompilationCache(), limit: int32(max(runtime.GOMAXPROCS(0), 1))}
	p.pool = make(chan *wasmVM, p.limit)
	// The memory import's minimum, read from the compiled module.
	probeRT := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(p.cache))
	cm, err := probeRT.CompileModule(ctx, p.raw)
	if err != nil {
		probeRT.Close(ctx)
		return nil, fmt.Errorf("%w: wasm: %w", ErrCompile, err)
	}
	mems := cm.ImportedMemories()
	probeRT.Close(ctx)
	if len(mems) != 1 {
		return nil, fmt.Errorf("%w: wasm: module imports %d memories, want 1", ErrCompile, len(mems))
	}
	p.memMin = mems[0].Min()
	vm, err := p.newVM(ctx)
	if err != nil {
		return nil, err
	}
	// Builtins the module expects from the host, as {"name": id}.
	need, err := vm.callString(ctx, "builtins")
	if err != nil {
		vm.close()
		return nil, fmt.Errorf("%w: wasm: %w", ErrCompile, err)
	}
	if strings.TrimSpace(need) != "{}" {
		vm.close()
		return nil, fmt.Errorf("%w: %s", ErrWasmHostBuiltins, need)
	}
	entries, err := vm.callString(ctx, "entrypoints")
	if err != nil {
		vm.close()
		return nil, fmt.Errorf("%w: wasm: %w", ErrCompile, err)
	}
	var ids map[string]int32
	if err := json.Unmarshal([]byte(entries), &ids); err != nil {
		vm.close()
		return nil, fmt.Errorf("%w: wasm entrypoints: %w", ErrCompile, err)
	}
	id, ok := ids[wasmEntrypoint]
	if !ok {
		vm.close()
		return nil, fmt.Errorf("%w: wasm: no entrypoint %s", ErrCompile, wasmEntrypoint)
	}
	p.entry = id
	p.created.Store(1)
	p.pool <- vm
	return p, nil
}

// opaHostFuncs are the functions the OPA Wasm module imports from "env"
// besides its memory: opa_builtin0..4 (id, ctx, args...) -> value and
// opa_abort/opa_println (addr).
var opaHostFuncs = []struct {
	name  string
	nargs int
	ret   bool
}{
	{"opa_builtin0", 2, true}, {"opa_builtin1", 3, true}, {"opa_builtin2", 4, true},
	{"opa_builtin3", 5, true}, {"opa_builtin4", 6, true}, {"opa_abort", 1, false}, {"opa_println", 1, false},
}

// errWasmAbort carries opa_abort's message (a runtime error in the policy,
// e.g. a conflict between complete rule values).
type errWasmAbort string

func (e errWasmAbort) Error() string { return "opa_abort: " + string(e) }

func (p *wasmPolicy) newVM(ctx context.Context) (*wasmVM, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(p.cache).WithMemoryLimitPages(wasmMaxPages))
	fail := func(err error) (*wasmVM, error) {
		rt.Close(ctx)
		return nil, fmt.Errorf("%w: wasm instance: %w", ErrCompile, err)
	}
	hb := rt.NewHostModuleBuilder("opa")
	for _, f := range opaHostFuncs {
		params := make([]api.ValueType, f.nargs)
		for i := range params {
			params[i] = api.ValueTypeI32
		}
		var results []api.ValueType
		if f.ret {
			results = []api.ValueType{api.ValueTypeI32}
		}
		var fn api.GoModuleFunc
		switch f.name {
		case "opa_abort":
			fn = func(_ context.Context, m api.Module, stack []uint64) {
				panic(errWasmAbort(readCString(m.Memory(), uint32(stack[0]), 256)))
			}
		case "opa_println":
			fn = func(context.Context, api.Module, []uint64) {}
		default:
			name := f.name
			fn = func(context.Context, api.Module, []uint64) {
				panic(fmt.Errorf("%w: %s called", ErrWasmHostBuiltins, name))
			}
		}
		hb.NewFunctionBuilder().WithGoModuleFunction(fn, params, results).Export(f.name)
	}
	if _, err := hb.Instantiate(ctx); err != nil {
		return fail(err)
	}
	if _, err := rt.InstantiateWithConfig(ctx, envGlueModule(p.memMin), wazero.NewModuleConfig().WithName("env")); err != nil {
		return fail(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, p.raw, wazero.NewModuleConfig().WithName("policy"))
	if err != nil {
		return fail(err)
	}
	vm := &wasmVM{rt: rt, mod: mod, mem: mod.Memory(), eval: mod.ExportedFunction("opa_eval")}
	if vm.mem == nil || vm.eval == nil {
		return fail(errors.New("module lacks memory or opa_eval (OPA Wasm ABI < 1.2)"))
	}
	vm.enc = json.NewEncoder(&vm.in)
	vm.enc.SetEscapeHTML(false)
	// Initialise the heap, parse the (empty) data document, and remember
	// the heap pointer: every evaluation writes its input there and
	// opa_eval resets the heap above it, so memory does not grow.
	if _, err := vm.call(ctx, "opa_malloc", 0); err != nil {
		return fail(err)
	}
	const data = "{}"
	addr, err := vm.call(ctx, "opa_malloc", uint64(len(data)))
	if err != nil {
		return fail(err)
	}
	vm.mem.Write(uint32(addr), []byte(data))
	if vm.dataAddr, err = vm.call(ctx, "opa_json_parse", addr, uint64(len(data))); err != nil || vm.dataAddr == 0 {
		return fail(fmt.Errorf("parse data: %v", err))
	}
	if vm.base, err = vm.call(ctx, "opa_heap_ptr_get"); err != nil {
		return fail(err)
	}
	return vm, nil
}

func (vm *wasmVM) close() { vm.rt.Close(context.Background()) }

func (vm *wasmVM) call(ctx context.Context, name string, args ...uint64) (uint64, error) {
	f := vm.mod.ExportedFunction(name)
	if f == nil {
		return 0, fmt.Errorf("module does not export %s", name)
	}
	res, err := f.Call(ctx, args...)
	if err != nil {
		return 0, err
	}
	if len(res) == 0 {
		return 0, nil
	}
	return res[0], nil
}

// callString calls a value-returning export and dumps the value as JSON.
func (vm *wasmVM) callString(ctx context.Context, name string) (string, error) {
	v, err := vm.call(ctx, name)
	if err != nil {
		return "", err
	}
	s, err := vm.call(ctx, "opa_json_dump", v)
	if err != nil {
		return "", err
	}
	return readCString(vm.mem, uint32(s), 1<<20), nil
}

// readCString reads the NUL-terminated string at addr (at most max bytes).
func readCString(mem api.Memory, addr uint32, max uint32) string {
	b := cString(mem, addr)
	if uint32(len(b)) > max {
		b = b[:max]
	}
	return string(b)
}

// cString is the NUL-terminated string at addr as a view of the memory
// (valid until the next call into the module); nil when out of range.
func cString(mem api.Memory, addr uint32) []byte {
	if addr >= mem.Size() {
		return nil
	}
	b, ok := mem.Read(addr, mem.Size()-addr)
	if !ok {
		return nil
	}
	if n := bytes.IndexByte(b, 0); n >= 0 {
		return b[:n]
	}
	return b
}

// get takes an idle VM, creating one while fewer than limit exist, else
// waits for one. errors: ctx's.
func (p *wasmPolicy) get(ctx context.Context) (*wasmVM, error) {
	select {
	case vm := <-p.pool:
		return vm, nil
	default:
	}
	for {
		n := p.created.Load()
		if n >= p.limit {
			break
		}
		if p.created.CompareAndSwap(n, n+1) {
			vm, err := p.newVM(ctx)
			if err != nil {
				p.created.Add(-1)
				return nil, err
			}
			return vm, nil
		}
	}
	select {
	case vm := <-p.pool:
		return vm, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// put returns a healthy VM to the pool. A VM whose evaluation trapped is
// closed and a fresh one put in its place, so that callers already waiting
// in get are served (a trapped VM that were only dropped would leave them
// waiting for an instance that no longer exists).
func (p *wasmPolicy) put(vm *wasmVM, healthy bool) {
	if !healthy {
		vm.close()
		fresh, err := p.newVM(context.Background())
		if err != nil {
			p.created.Add(-1) // the next get that finds none idle creates one
			return
		}
		vm = fresh
	}
	p.pool <- vm
}

// eval runs one decision. errors: as compiled.eval.
func (p *wasmPolicy) eval(ctx context.Context, in Input) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return deny("policy evaluation failed; denied by default"), fmt.Errorf("%w: %w", ErrEvaluation, err)
	}
	vm, err := p.get(ctx)
	if err != nil {
		return deny("policy evaluation failed; denied by default"), fmt.Errorf("%w: %w", ErrEvaluation, err)
	}
	d, healthy, err := vm.decide(ctx, p.entry, &in)
	p.put(vm, healthy)
	return d, err
}

var (
	emptyRoles = []string{}
	emptyAttrs = map[string]string{}
)

func (vm *wasmVM) decide(ctx context.Context, entry int32, in *Input) (Decision, bool, error) {
	failed := func(err error) (Decision, bool, error) {
		return deny("policy evaluation failed; denied by default"), false, fmt.Errorf("%w: %w", ErrEvaluation, err)
	}
	// A nil slice or map is written as [] and {}, as Input.value does for
	// topdown: every key is present with its type.
	w := *in
	if w.Subject.Roles == nil {
		w.Subject.Roles = emptyRoles
	}
	if w.Resource.Attributes == nil {
		w.Resource.Attributes = emptyAttrs
	}
	vm.in.Reset()
	if err := vm.enc.Encode(&w); err != nil {
		return failed(err)
	}
	raw := bytes.TrimSuffix(vm.in.Bytes(), []byte("\n"))
	end := vm.base + uint64(len(raw))
	if need := end + 64<<10; need > uint64(vm.mem.Size()) {
		if _, ok := vm.mem.Grow(uint32((need - uint64(vm.mem.Size()) + 65535) / 65536)); !ok {
			return failed(errors.New("wasm memory limit"))
		}
	}
	if !vm.mem.Write(uint32(vm.base), raw) {
		return failed(errors.New("write input"))
	}
	// opa_eval(reserved, entrypoint, data, input, input_len, heap_ptr, format=0 JSON)
	vm.stack = [7]uint64{0, uint64(uint32(entry)), vm.dataAddr, vm.base, uint64(len(raw)), end, 0}
	if err := vm.eval.CallWithStack(ctx, vm.stack[:]); err != nil {
		return failed(err)
	}
	out := cString(vm.mem, uint32(vm.stack[0]))
	if out == nil {
		return failed(errors.New("result address out of range"))
	}
	d, err := parseWasmResult(out)
	if err != nil {
		return d, true, err
	}
	return d, true, nil
}

// parseWasmResult reads opa_eval's JSON result set, [{"result": decision}],
// with the same rules as parseDecision.
func parseWasmResult(out []byte) (Decision, error) {
	var rs []struct {
		Result json.RawMessage `json:"result"` // null stays "null"; absent stays empty
	}
	if err := json.Unmarshal(out, &rs); err != nil {
		return deny("policy decision malformed; denied by default"), fmt.Errorf("%w: result set: %w", ErrMalformedDecision, err)
	}
	if len(rs) == 0 {
		return deny("policy decision undefined; denied by default"), fmt.Errorf("%w: %s", ErrUndefined, Query)
	}
	if len(rs) > 1 {
		return deny("policy decision malformed; denied by default"), fmt.Errorf("%w: %d results", ErrMalformedDecision, len(rs))
	}
	if len(rs[0].Result) == 0 {
		return deny("policy decision undefined; denied by default"), fmt.Errorf("%w: %s", ErrUndefined, Query)
	}
	d, err := parseDecisionJSON(rs[0].Result)
	if err != nil {
		return deny("policy decision malformed; denied by default"), err
	}
	return d, nil
}

// parseDecisionJSON is parseDecision for a JSON document.
func parseDecisionJSON(v json.RawMessage) (Decision, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err != nil || obj == nil {
		return Decision{}, fmt.Errorf("%w: %s, want an object", ErrMalformedDecision, jsonKind(v))
	}
	var d Decision
	var err error
	if d.Allow, err = jsonBool(obj, "allow"); err != nil {
		return Decision{}, err
	}
	if d.BreakGlass, err = jsonBool(obj, "break_glass"); err != nil {
		return Decision{}, err
	}
	var rs []json.RawMessage
	if r, ok := obj["reasons"]; ok {
		if json.Unmarshal(r, &rs) != nil {
			rs = nil
		}
	}
	if len(rs) == 0 {
		return Decision{}, fmt.Errorf("%w: reasons is not a non-empty array", ErrMalformedDecision)
	}
	d.Reasons = make([]string, len(rs))
	for i, r := range rs {
		if len(r) == 0 || r[0] != '"' || json.Unmarshal(r, &d.Reasons[i]) != nil {
			return Decision{}, fmt.Errorf("%w: reasons[%d] is %s, want string", ErrMalformedDecision, i, jsonKind(r))
		}
	}
	if d.BreakGlass && !d.Allow {
		return Decision{}, fmt.Errorf("%w: break_glass without allow", ErrMalformedDecision)
	}
	return d, nil
}

func jsonBool(obj map[string]json.RawMessage, k string) (bool, error) {
	v, ok := obj[k]
	if !ok {
		return false, fmt.Errorf("%w: %s is missing", ErrMalformedDecision, k)
	}
	switch string(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%w: %s is %s, want boolean", ErrMalformedDecision, k, jsonKind(v))
}

// jsonKind names a JSON value's type like ast.ValueName does.
func jsonKind(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "undefined"
	}
	switch v[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// close releases every idle VM's runtime (busy ones are released by GC).
func (p *wasmPolicy) close() {
	for {
		select {
		case vm := <-p.pool:
			vm.close()
		default:
			return
		}
	}
}

// envGlueModule is a minimal Wasm module named "env" that owns the linear
// memory the policy imports (a host module cannot export memory in wazero)
// and re-exports the "opa" host functions under the names the policy
// imports from "env". Binary format per the WebAssembly core spec §5.
func envGlueModule(minPages uint32) []byte {
	leb := func(b []byte, n uint32) []byte {
		for {
			c := byte(n & 0x7f)
			n >>= 7
			if n == 0 {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	name := func(b []byte, s string) []byte { return append(leb(b, uint32(len(s))), s...) }
	section := func(m []byte, id byte, body []byte) []byte {
		return append(leb(append(m, id), uint32(len(body))), body...)
	}
	const i32 = 0x7f
	// Types: 0 = (i32)->(); 1+k = (i32 × (k+2)) -> i32 for opa_builtin<k>.
	types := leb(nil, 6)
	types = append(types, 0x60, 1, i32, 0)
	for n := 2; n <= 6; n++ {
		types = append(types, 0x60, byte(n))
		for range n {
			types = append(types, i32)
		}
		types = append(types, 1, i32)
	}
	imports := leb(nil, uint32(len(opaHostFuncs)))
	exports := leb(nil, uint32(len(opaHostFuncs)+1))
	exports = append(name(exports, "memory"), 0x02, 0)
	for i, f := range opaHostFuncs {
		typ := byte(0)
		if f.ret {
			typ = byte(f.nargs - 1)
		}
		imports = append(name(name(imports, "opa"), f.name), 0x00, typ)
		exports = leb(append(name(exports, f.name), 0x00), uint32(i))
	}
	memory := leb(append(leb(nil, 1), 0x01), minPages) // limits with max
	memory = leb(memory, wasmMaxPages)
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = section(m, 1, types)
	m = section(m, 2, imports)
	m = section(m, 5, memory)
	m = section(m, 7, exports)
	return m
}
