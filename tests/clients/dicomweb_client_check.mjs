// Drive the npm dicomweb-client (the JavaScript client OHIF is built on) against a DICOMweb
// server the way a viewer does: store, search with wildcards, read metadata and bulk data,
// retrieve frames in the client's default and in the stored syntax, and rendered frames.
// Prints one JSON object (what each call returned) for the caller to judge
// (tests/clients/test_dicomweb_client_js.py); exits 1 when a call throws.
//
// node tests/clients/dicomweb_client_check.mjs --url http://127.0.0.1:P/v1 --manifest FILE
//
// The manifest names the files to store and the instance to read:
// {"files": [...], "study": UID, "series": UID, "sop": UID, "storedSyntax": UID,
//  "storedMediaType": "image/jpeg", "patientName": "PATTERN*", "patientId": "PATTERN?"}

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
// dicomweb-client speaks XMLHttpRequest, which node lacks; xhr2 is its node implementation.
globalThis.XMLHttpRequest = require('xhr2');
const { api } = require('dicomweb-client');

const { values: args } = parseArgs({ options: { url: { type: 'string' }, manifest: { type: 'string' } } });
if (!args.url || !args.manifest) {
  console.error('dicomweb_client_check.mjs: --url and --manifest are required');
  process.exit(2);
}
const manifest = JSON.parse(readFileSync(args.manifest, 'utf8'));
const client = new api.DICOMwebClient({ url: args.url });
const ids = {
  studyInstanceUID: manifest.study,
  seriesInstanceUID: manifest.series,
  sopInstanceUID: manifest.sop,
};

function describe(part) {
  const bytes = new Uint8Array(part);
  return {
    length: bytes.byteLength,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    base64: bytes.byteLength <= 65536 ? Buffer.from(bytes).toString('base64') : null,
    contentType: part.contentType ?? null,
    transferSyntaxUID: part.transferSyntaxUID ?? null,
  };
}

const uidsOf = (results, tag) => results.map((item) => item[tag].Value[0]).sort();

const datasets = manifest.files.map((file) => {
  const bytes = readFileSync(file);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
});
const report = {};
try {
  const stored = await client.storeInstances({ datasets });
  report.store = stored ? Object.keys(stored) : null;
  report.studiesByName = uidsOf(
    await client.searchForStudies({ queryParams: { PatientName: manifest.patientName } }), '0020000D');
  report.studiesById = uidsOf(
    await client.searchForStudies({ queryParams: { PatientID: manifest.patientId } }), '0020000D');
  report.series = uidsOf(await client.searchForSeries({ studyInstanceUID: manifest.study }), '0020000E');
  report.instances = uidsOf(await client.searchForInstances({
    studyInstanceUID: manifest.study, seriesInstanceUID: manifest.series,
    queryParams: { includefield: 'Rows,Columns,SamplesPerPixel' },
  }), '00080018');

  const [metadata] = await client.retrieveInstanceMetadata(ids);
  report.metadata = { rows: metadata['00280010'].Value[0], columns: metadata['00280011'].Value[0],
    frames: Number(metadata['00280008']?.Value?.[0] ?? 1), pixelDataURI: metadata['7FE00010']?.BulkDataURI ?? null };
  if (report.metadata.pixelDataURI) {
    const bulk = await client.retrieveBulkData({ BulkDataURI: report.metadata.pixelDataURI });
    report.bulkData = bulk.map(describe);
  }

  // The client's default frame request: multipart/related; type="application/octet-stream".
  report.framesDefault = (await client.retrieveInstanceFrames({ ...ids, frameNumbers: [1, 2] })).map(describe);
  report.framesStored = (await client.retrieveInstanceFrames({
    ...ids, frameNumbers: [2],
    mediaTypes: [{ mediaType: manifest.storedMediaType, transferSyntaxUID: manifest.storedSyntax }],
  })).map(describe);
  report.framesAnySyntax = (await client.retrieveInstanceFrames({
    ...ids, frameNumbers: [1], mediaTypes: [{ mediaType: 'application/octet-stream', transferSyntaxUID: '*' }],
  })).map(describe);
  const rendered = await client.retrieveInstanceFramesRendered({
    ...ids, frameNumbers: [1], mediaTypes: [{ mediaType: 'image/png' }],
  });
  // A single-part answer comes back as a one-element array (dicomweb-client 0.11).
  report.renderedFrame = describe(Array.isArray(rendered) ? rendered[0] : rendered);
} catch (error) {
  console.error(`dicomweb-client call failed: ${error?.message ?? error} ${error?.status ?? ''}`);
  console.log(JSON.stringify(report));
  process.exit(1);
}
console.log(JSON.stringify(report));
