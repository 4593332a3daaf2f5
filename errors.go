package omi

import (
	"errors"
	"fmt"
)

// Error is a failure that an API client can act on: it carries the OUTSCALE
// error code and type that clients (terraform, the SDKs' IsNotFound helpers)
// key off, and a human-readable detail. Err is the underlying cause, logged
// for the operator and never sent to the client.
type Error struct {
	Code    string // numeric OUTSCALE code, e.g. "5023"
	Type    string // OUTSCALE type, e.g. "InvalidResource"
	Details string // message for the client
	Err     error  // cause, for logs only
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s %s: %s: %v", e.Code, e.Type, e.Details, e.Err)
	}
	return fmt.Sprintf("%s %s: %s", e.Code, e.Type, e.Details)
}

func (e *Error) Unwrap() error { return e.Err }

// OUTSCALE error types, as written in the Type field of an error.
const (
	TypeDefault            = "DefaultError"
	TypeAccessDenied       = "AccessDenied"
	TypeAuthFailure        = "AuthFailure"
	TypeInvalidParameter   = "InvalidParameterValue"
	TypeInvalidResource    = "InvalidResource"
	TypeInvalidState       = "InvalidState"
	TypeNotSupported       = "OperationNotSupported"
	TypeResourceConflict   = "ResourceConflict"
	TypeTooManyResources   = "TooManyResources"
	TypeDependencyProblem  = "DependencyProblem"
	TypeInternal           = "InternalError"
	TypeMissingCredentials = "MissingLoginPassword"
	TypeWrongAuthMethod    = "WrongAuthenticationMethod"
)

// Errorf builds an *Error with the given code and type.
func Errorf(code, typ, format string, args ...any) *Error {
	return &Error{Code: code, Type: typ, Details: fmt.Sprintf(format, args...)}
}

// Invalid is a 4xxx InvalidParameterValue error.
func Invalid(code, format string, args ...any) *Error {
	return Errorf(code, TypeInvalidParameter, format, args...)
}

// NotFound is a 5xxx InvalidResource error: the id does not exist or is not
// visible to the caller. The two cases are deliberately indistinguishable so
// that one account cannot probe another's resources.
func NotFound(code, format string, args ...any) *Error {
	return Errorf(code, TypeInvalidResource, format, args...)
}

// Conflict is a 9xxx ResourceConflict error.
func Conflict(code, format string, args ...any) *Error {
	return Errorf(code, TypeResourceConflict, format, args...)
}

// BadState is a 6xxx InvalidState error.
func BadState(code, format string, args ...any) *Error {
	return Errorf(code, TypeInvalidState, format, args...)
}

// Internal wraps an unexpected failure. The cause is kept for the log; the
// client only learns that the server failed.
func Internal(err error) *Error {
	return &Error{Code: "0", Type: TypeInternal, Details: "internal error", Err: err}
}

// Well-known error codes used across the service.
const (
	CodeAuthFailed        = "1"    // AccessDenied: bad signature, unknown key
	CodeNotAuthorized     = "5"    // AccessDenied: credentials not allowed for this call
	CodeMissingAuth       = "7"    // AccessDenied: no credentials
	CodeWrongAuthMethod   = "8"    // login/password used where not allowed
	CodeLoginLocked       = "13"   // AccessDenied: TemporaryBruteForceAccessLocked
	CodeInvalidBDM        = "4011" // invalid block device mapping
	CodeInvalidDeviceName = "4019"
	CodeInvalidID         = "4025"
	CodeInvalidImageName  = "4026"
	CodeInvalidIops       = "4029"
	CodeInvalidParameter  = "4045"
	CodeInvalidParamSet   = "4046"
	CodeInvalidValue      = "4047"
	CodeInvalidRootMap    = "4057"
	CodeInvalidTagKey     = "4069"
	CodeInvalidTagValue   = "4070"
	CodeInvalidType       = "4073"
	CodeInvalidVolumeSize = "4078"
	CodeInvalidZone       = "4081"
	CodeValidation        = "4095"
	CodeInvalidIDPrefix   = "4104"
	CodeMalformedID       = "4105"
	CodeValueLength       = "4106"
	CodeParameterType     = "4108"
	CodeInvalidPageToken  = "4117"
	CodeTooSmallVolume    = "4125"
	CodeIopsRatio         = "4202"
	CodeNoSuchOperation   = "5038"
	CodeNoSuchRegion      = "5043"
	CodeNoSuchResource    = "5044"
	CodeNoSuchImage       = "5023"
	CodeNoSuchVmType      = "5024"
	CodeNoSuchAccessKey   = "4000"
	CodeNoSuchSnapshot    = "5054"
	CodeNoSuchTask        = "5058"
	CodeNoSuchVm          = "5063"
	CodeNoSuchVolume      = "5064"
	CodeNoSuchAZ          = "5009"
	CodeInvalidImageState = "6001"
	CodeInvalidState      = "6003"
	CodeInvalidVmState    = "6006"
	CodeInvalidVolState   = "6007"
	CodeAlreadyExists     = "9000"
	CodeDeviceInUse       = "9004"
	CodeDuplicateName     = "9015"
	CodeTooManyKeys       = "10005"
)

// ErrNotFound is returned by stores when a record does not exist. Services
// translate it into the resource-specific 5xxx code.
var ErrNotFound = errors.New("not found")

// AsError returns err as an *Error, wrapping anything else as internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}
