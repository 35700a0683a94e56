#!/usr/bin/env node
// Starts the Cosmos DB test server (npm @vercel/cosmosdb-server) for tests and local runs.
//
// Why not its own CLI: it has no keep-alive option (every SDK call then opens a new TLS
// connection, ~60 ms each), its read-document handler throws on a missing item, so the
// client gets 500 where real Cosmos answers 404, and its batch handler wants the partition
// key in each operation rather than the header. All are fixed here, in one place
// that the test set-up and `scripts/emulators.sh` share, never by editing node_modules.
//
// Usage: node scripts/cosmosdb-server.js [--host 127.0.0.1] [--port 0]
// Port 0 picks a free port; the chosen one is printed as "listening on https://HOST:PORT".
"use strict";

const readDocument = require("@vercel/cosmosdb-server/lib/handler/read-document");

// Patch before the server's route table is built (it captures the handler at load time).
const originalRead = readDocument.default;
readDocument.default = (account, req, res, params) => {
  try {
    return originalRead(account, req, res, params);
  } catch (error) {
    // The handler dereferences the missing document before checking it exists.
    if (!(error instanceof TypeError)) throw error;
    res.statusCode = 404;
    return { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
  }
};

// A transactional batch names its partition in the request header (as the SDKs send it);
// the server's batch handler looks for it in each operation, so copy it there. (Its
// batches are not atomic: operations before a failing one stay applied, where Azure rolls
// them back. The index store's fallback after a failed batch copes with both.)
const json = require("@vercel/cosmosdb-server/lib/json");
const originalJson = json.default;
json.default = async (req) => {
  const body = await originalJson(req);
  const partition = req.headers["x-ms-documentdb-partitionkey"];
  if (req.headers["x-ms-cosmos-is-batch-request"] && Array.isArray(body) && partition) {
    for (const operation of body) {
      if (operation && operation.partitionKey === undefined) operation.partitionKey = partition;
    }
  }
  return body;
};

const { createHttpsServer } = require("@vercel/cosmosdb-server");

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};
const host = option("--host", "127.0.0.1");
const port = parseInt(option("--port", "0"), 10);

const server = createHttpsServer({ keepAlive: true });
// Longer than any client pool's idle time, so a pooled connection is never closed under it.
server.keepAliveTimeout = 600_000;
server.headersTimeout = 601_000;
server.listen(port, host, () => {
  console.log(`listening on https://${host}:${server.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(0));
}
