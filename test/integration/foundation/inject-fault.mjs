// Loaded into `lifeboat serve` with `node --import` by serve.test.ts: on SIGUSR2 a callback
// throws and a promise is rejected with nobody waiting for it, the two errors that end a
// Node process that has no handler for them.
process.on("SIGUSR2", () => {
  setImmediate(() => {
    throw new Error("injected fault");
  });
  void Promise.reject(new Error("injected rejection"));
});
