// stdout carries attempt.mjs's one answer line only. The SDK's loggers bind the console's methods
// when they are made (on import), so this runs before the SDK is imported.
for (const level of ["log", "info", "debug", "trace"]) console[level] = console.error;
