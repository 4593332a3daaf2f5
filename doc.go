// Package omi is the domain core of omi, a self-hostable implementation of
// the OUTSCALE machine image (OMI) service.
//
// It holds the resource types exactly as the OUTSCALE API names them (Image,
// Snapshot, Volume, Vm, Account, AccessKey, Tag), the validation rules of the
// OMI user guide and of the API specification, resource identifiers, the
// error type that carries an OUTSCALE error code, and the contract of the
// metadata store. It imports only the standard library: every outside
// dependency (SQL drivers, HTTP, block storage) lives in a subpackage that
// depends on this one, never the other way round.
//
// The resource structs carry the JSON names of the OUTSCALE API because those
// names are the domain's vocabulary: the API layer writes them to the wire
// unchanged, and the store keeps them as documents.
package omi
