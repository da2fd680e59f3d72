package gitops

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/yaml"
)

// healthStatus is Argo CD's health.HealthStatus (gitops-engine pkg/health).
type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// luaTimeout is the deadline Argo CD gives every Lua script.
const luaTimeout = 1 * time.Second

// runHealthLua runs a health script the way Argo CD runs one configured in
// argocd-cm (util/lua VM.runLua and ExecuteHealthLua, UseOpenLibs false):
//   - lua.NewState with SkipOpenLibs, then only the package, base and table
//     libraries are opened (Argo CD adds a "safe" os with time/date/clock,
//     which this script does not need: a script using it fails here, which
//     is stricter); no string, math, io or coroutine library;
//   - a context with a 1 s timeout;
//   - the live object as the global obj, converted from the unstructured
//     map by the same rules as Argo CD's decodeValue;
//   - the returned table is encoded with gopher-json and decoded into a
//     HealthStatus; a status code Argo CD does not know becomes Unknown.
func runHealthLua(obj map[string]any, script string) (*healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), luaTimeout)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	b, err := luajson.Encode(ret)
	if err != nil {
		return nil, err
	}
	hs := &healthStatus{}
	if err := json.Unmarshal(b, hs); err != nil {
		return nil, err
	}
	switch hs.Status {
	case "Unknown", "Progressing", "Suspended", "Healthy", "Degraded", "Missing":
		return hs, nil
	}
	return &healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
}

// decodeValue converts an unstructured value to Lua as Argo CD does: maps to
// hash tables, slices to arrays, every number (int64 from the API, float64)
// to LNumber, json.Number to a string, anything else to nil.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// readObject reads a manifest the way the API server hands it to Argo CD's
// cache: JSON decoded into an unstructured map (integers as int64).
func readObject(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return u.Object, nil
}
