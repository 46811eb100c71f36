// JSON.parse source text access and JSON.rawJSON (TC39, shipped in V8 11.4 / Node 21+), which
// TypeScript 5.9's lib does not declare yet.
interface RawJSON {
  readonly rawJSON: string;
}

interface JSON {
  rawJSON(text: string): RawJSON;
  isRawJSON(value: unknown): value is RawJSON;
  parse(text: string, reviver: (this: unknown, key: string, value: unknown, context: { source?: string }) => unknown): unknown;
}
