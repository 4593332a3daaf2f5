package nbd

// Wire constants of the NBD protocol (proto.md, "Values"). All integers on
// the wire are big-endian.
const (
	magicInit       uint64 = 0x4e42444d41474943 // "NBDMAGIC"
	magicOpt        uint64 = 0x49484156454F5054 // "IHAVEOPT"
	magicOptReply   uint64 = 0x3e889045565a9
	magicRequest    uint32 = 0x25609513
	magicSimple     uint32 = 0x67446698
	magicStructured uint32 = 0x668e33ef
)

// Handshake flags (server) and client flags.
const (
	flagFixedNewstyle uint16 = 1 << 0
	flagNoZeroes      uint16 = 1 << 1

	clientFixedNewstyle uint32 = 1 << 0
	clientNoZeroes      uint32 = 1 << 1
)

// Transmission flags.
const (
	tflagHasFlags        uint16 = 1 << 0
	tflagReadOnly        uint16 = 1 << 1
	tflagSendFlush       uint16 = 1 << 2
	tflagSendFUA         uint16 = 1 << 3
	tflagSendTrim        uint16 = 1 << 5
	tflagSendWriteZeroes uint16 = 1 << 6
	tflagSendDF          uint16 = 1 << 7
	tflagSendCache       uint16 = 1 << 10
	tflagSendFastZero    uint16 = 1 << 11
)

// Options.
const (
	optExportName      uint32 = 1
	optAbort           uint32 = 2
	optList            uint32 = 3
	optStartTLS        uint32 = 5
	optInfo            uint32 = 6
	optGo              uint32 = 7
	optStructuredReply uint32 = 8
	optListMetaContext uint32 = 9
	optSetMetaContext  uint32 = 10
)

// Option reply types.
const (
	repAck         uint32 = 1
	repServer      uint32 = 2
	repInfo        uint32 = 3
	repMetaContext uint32 = 4

	repErrUnsup    uint32 = 1<<31 + 1
	repErrPolicy   uint32 = 1<<31 + 2
	repErrInvalid  uint32 = 1<<31 + 3
	repErrTLSReqd  uint32 = 1<<31 + 5
	repErrUnknown  uint32 = 1<<31 + 6
	repErrShutdown uint32 = 1<<31 + 7
	repErrTooBig   uint32 = 1<<31 + 9
)

// Information types in NBD_REP_INFO.
const (
	infoExport    uint16 = 0
	infoName      uint16 = 1
	infoBlockSize uint16 = 3
)

// Commands.
const (
	cmdRead        uint16 = 0
	cmdWrite       uint16 = 1
	cmdDisc        uint16 = 2
	cmdFlush       uint16 = 3
	cmdTrim        uint16 = 4
	cmdCache       uint16 = 5
	cmdWriteZeroes uint16 = 6
	cmdBlockStatus uint16 = 7
)

// Command flags.
const (
	cmdFlagFUA      uint16 = 1 << 0
	cmdFlagNoHole   uint16 = 1 << 1
	cmdFlagDF       uint16 = 1 << 2
	cmdFlagReqOne   uint16 = 1 << 3
	cmdFlagFastZero uint16 = 1 << 4
)

// Structured reply flags and chunk types.
const (
	replyFlagDone uint16 = 1 << 0

	replyNone        uint16 = 0
	replyOffsetData  uint16 = 1
	replyOffsetHole  uint16 = 2
	replyBlockStatus uint16 = 5
	replyError       uint16 = 1<<15 + 1
)

// Error values carried in replies.
const (
	errPerm     uint32 = 1
	errIO       uint32 = 5
	errNoMem    uint32 = 12
	errInval    uint32 = 22
	errNoSpc    uint32 = 28
	errOverflow uint32 = 75
	errNotSup   uint32 = 95
	errShutdown uint32 = 108
)

// base:allocation states.
const (
	stateHole uint32 = 1 << 0
	stateZero uint32 = 1 << 1
)

// Limits.
const (
	// MaxRequestSize bounds the payload of one READ or WRITE: 32 MiB, the
	// size proto.md says clients may always use and servers must not treat
	// as a denial of service. It is advertised as the maximum block size.
	MaxRequestSize = 32 << 20

	preferredBlockSize = 4096
	minBlockSize       = 1

	// maxOptionLen bounds one option's data during the handshake. Every
	// option we understand fits in a few KiB (strings are at most 4096 bytes).
	maxOptionLen = 64 << 10
	// maxStringLen is the protocol's hard limit on names and queries.
	maxStringLen = 4096
	// metaAllocationID is the context id handed out for base:allocation.
	metaAllocationID uint32 = 1
	// metaAllocation is the only metadata context served.
	metaAllocation = "base:allocation"

	requestHeaderLen = 28
)
