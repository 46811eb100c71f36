// PHI that must never rest in the clear: written through the API, looked for in the raw storage.
export const CANARIES = ['Zqcanaryfam', 'Zqcanarygiv', '1933-03-03', 'ZQMRN98765', '555-7788-1234', 'Zq Canary Lane', 'Zqnarrative', 'Zqvaluestring', 'Zqnotetext', '987.654', 'Zqkinname'];
export const canaryPatient = {
  resourceType: 'Patient',
  text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Zqnarrative</div>' },
  identifier: [{ system: 'urn:mrn', value: 'ZQMRN98765' }],
  name: [{ family: 'Zqcanaryfam', given: ['Zqcanarygiv'] }],
  telecom: [{ system: 'phone', value: '555-7788-1234' }],
  gender: 'female',
  birthDate: '1933-03-03',
  address: [{ line: ['Zq Canary Lane'] }],
  contact: [{ name: { family: 'Zqkinname' } }],
};

/** An Observation of the canary Patient whose protected elements are canaries too. */
export const canaryObservation = (patientId: string) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { text: 'panel' },
  subject: { reference: `Patient/${patientId}` },
  valueString: 'Zqvaluestring',
  note: [{ text: 'Zqnotetext' }],
  component: [{ code: { text: 'c' }, valueQuantity: { value: 987.654 } }],
});
