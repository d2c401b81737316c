/**
 * Builds one value per entry of a definitions table, keeping the table's literal keys: metrics are then looked up
 * as `counters.promptTokens`, and a misspelt key is a compile error rather than a metric that records nothing.
 */
export function mapEntries<K extends string, D, V>(
  definitions: Readonly<Record<K, D>>,
  make: (definition: D) => V,
): Record<K, V> {
  const built: Partial<Record<K, V>> = {};
  for (const key of Object.keys(definitions) as K[]) built[key] = make(definitions[key]);
  return built as Record<K, V>;
}
