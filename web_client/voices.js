// The Say box's voice list: the default engine's voices, its default first-selected.

/** <option>s for an available engine from GET /voices (espeak-ng also offers its female variant of the default). */
export function voiceOptions(engine) {
  const voices = [...engine.voices].sort((a, b) => a.name.localeCompare(b.name));
  const plain = !engine.default_voice.includes('+');
  if (plain && engine.variants?.includes('f3')) voices.unshift({ id: `${engine.default_voice}+f3`, name: 'female variant' });
  return voices.map((voice) => new Option(
    voice.id === engine.default_voice ? `${voice.name} (default)` : `${voice.name} · ${voice.id}`,
    voice.id,
    false,
    voice.id === engine.default_voice,
  ));
}
