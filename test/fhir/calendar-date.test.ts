import { describe, expect, it } from 'vitest';
import { isCalendarDate } from '../../src/fhir/validator.ts';

describe('calendar dates (R4: "Dates SHALL be valid dates")', () => {
  it.each([
    ['2024-02-29', true],
    ['2000-02-29', true],
    ['2023-02-29', false],
    ['1900-02-29', false],
    ['2023-04-31', false],
    ['2023-04-30', true],
    ['2023-12-31T23:59:59Z', true],
    ['2023-11-31T00:00:00+01:00', false],
    ['2023', true],
    ['2023-02', true],
  ])('%s → %s', (value, ok) => {
    expect(isCalendarDate(value)).toBe(ok);
  });
});
