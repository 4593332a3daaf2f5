package s3x

// BodyProtectedForTest exposes bodyProtected to the external tests.
var BodyProtectedForTest = bodyProtected
