import type { Image, ImageFacts, Reference } from '../model.ts';

/**
 * A trailing version, date or timestamp: `-v12`, `-1.4.2`, `-2026-01-15`, `_20260115T101500Z`,
 * `-1700000000`. Stripped repeatedly, so `web-1.2-20260101` is family `web` too.
 */
const VERSION_SUFFIX = /[-_. ]+v?\d+(?:[._:-]\d+)*(?:t\d+(?:[._:-]\d+)*z?)?$/i;

export function familyFromName(name: string): string {
  let family = name.trim();
  for (;;) {
    const stripped = family.replace(VERSION_SUFFIX, '');
    // A name that is nothing but a version (`2026-01-15`) is its own family, not family `2026`.
    if (stripped === family || !/[a-z]/i.test(stripped)) return family;
    family = stripped;
  }
}

/**
 * Family by the configured tag keys when the image carries all of them, else by name. Images
 * missing a family tag fall back to the name so an untagged image never lands in a shared
 * "empty" family where it could lose its keep-latest protection to unrelated images.
 */
export function familyOf(image: Image, familyTags: readonly string[]): string {
  if (familyTags.length > 0 && familyTags.every((key) => image.tags[key] !== undefined)) {
    return familyTags.map((key) => `${key}=${image.tags[key]}`).join(',');
  }
  return `name:${familyFromName(image.name || image.imageId)}`;
}

/** Ranks every image within its family, newest first (ties broken by id for a stable order). */
export function buildFacts(
  images: readonly Image[],
  references: ReadonlyMap<string, readonly Reference[]>,
  accountId: string,
  familyTags: readonly string[],
): Map<string, ImageFacts> {
  const families = new Map<string, Image[]>();
  for (const image of images) {
    const family = familyOf(image, familyTags);
    const members = families.get(family);
    if (members) members.push(image);
    else families.set(family, [image]);
  }
  const facts = new Map<string, ImageFacts>();
  for (const [family, members] of families) {
    members.sort(
      (a, b) => b.creationDate.getTime() - a.creationDate.getTime() || a.imageId.localeCompare(b.imageId),
    );
    members.forEach((image, index) => {
      facts.set(image.imageId, {
        accountId,
        references: references.get(image.imageId) ?? [],
        family,
        familyRank: index + 1,
        familySize: members.length,
      });
    });
  }
  return facts;
}
