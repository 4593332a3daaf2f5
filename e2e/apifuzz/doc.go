// Package apifuzz holds omi's spec-driven request fuzzer, run as an
// ordinary test (go test ./e2e/apifuzz) with a fixed seed and a bounded
// number of requests, so that CI keeps the API robust as calls are added.
//
// For every call the server routes (oapi.Server.Calls), it builds requests
// from the call's request schema in the OUTSCALE OpenAPI specification,
// filled with real ids of the calling account, then mutates them: wrong
// types, nulls, huge and invalid strings, unknown enum values, huge
// numbers and arrays, deeply nested and truncated JSON, bodies that are not
// objects, malformed and unknown ids, and ids of another account's
// resources. Every response must be a 2xx or a 4xx (never a 5xx), a 4xx
// must carry an error Code, a refused call must leave the store exactly as
// it was, a successful one must not show the other account's private
// resources, the other account's resources must be untouched at the end,
// and the server must still answer.
//
// The package has only tests; this file exists so that it is a package.
package apifuzz
