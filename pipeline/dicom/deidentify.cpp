#include "pipeline/dicom/deidentify.hpp"

#include "pipeline/dicom/dcmtk_file.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvrcs.h>

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>
#include <set>
#include <stdexcept>

namespace dcmstreams {

pseudonymizer::pseudonymizer(std::string key, deidentify_options options)
    : key_(std::move(key)), options_(options) {
  // Idempotent and thread-safe; randombytes_buf needs it.
  if (sodium_init() < 0)
    throw std::runtime_error("libsodium cannot start (no random source)");
  if (key_.empty()) {
    key_.resize(crypto_auth_hmacsha256_KEYBYTES);
    randombytes_buf(key_.data(), key_.size());
  }
}

std::string pseudonymizer::digest(std::string_view domain, const std::string& value) const {
  // The domain keeps a UID and a patient ID with the same text apart.
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key_.data()),
                              key_.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(domain.data()),
                                domain.size());
  const unsigned char separator = 0;
  crypto_auth_hmacsha256_update(&state, &separator, 1);
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(value.data()),
                                value.size());
  std::string mac(crypto_auth_hmacsha256_BYTES, '\0');
  crypto_auth_hmacsha256_final(&state, reinterpret_cast<unsigned char*>(mac.data()));
  return mac;
}

std::string pseudonymizer::uid(const std::string& original) {
  auto it = uids_.find(original);
  if (it != uids_.end())
    return it->second;
  auto mac = digest("uid", original);
  unsigned __int128 number = 0;
  for (int i = 0; i < 16; ++i)
    number = (number << 8) | static_cast<unsigned char>(mac[static_cast<std::size_t>(i)]);
  // A version 8 (custom) UUID of RFC 9562: bits 48-51 are 1000, bits 64-65 are 10.
  number &= ~(static_cast<unsigned __int128>(0xF) << 76);
  number |= static_cast<unsigned __int128>(0x8) << 76;
  number &= ~(static_cast<unsigned __int128>(0x3) << 62);
  number |= static_cast<unsigned __int128>(0x2) << 62;
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(number % 10)));
    number /= 10;
  } while (number != 0);
  auto fresh = "2.25." + digits;
  uids_.emplace(original, fresh);
  note(fresh, "uid", original);
  return fresh;
}

void pseudonymizer::note(const std::string& pseudonym, const std::string& kind,
                         const std::string& original) {
  if (options_.keep_mapping && !original.empty() && noted_.emplace(pseudonym, kind).second)
    records_.push_back({pseudonym, kind, original});
}

std::string pseudonymizer::patient(const std::string& patient_key) const {
  // 12 characters of Crockford's base 32: 60 bits, unambiguous to read aloud.
  static constexpr char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  auto mac = digest("patient", patient_key);
  std::uint64_t bits = 0;
  for (int i = 0; i < 8; ++i)
    bits = (bits << 8) | static_cast<unsigned char>(mac[static_cast<std::size_t>(i)]);
  std::string name = "ANON-";
  for (int i = 0; i < 12; ++i, bits >>= 5)
    name += alphabet[bits & 31];
  return name;
}

int pseudonymizer::day_shift(const std::string& patient_key) const {
  auto mac = digest("days", patient_key);
  std::uint32_t bits = 0;
  for (int i = 0; i < 4; ++i)
    bits = (bits << 8) | static_cast<unsigned char>(mac[static_cast<std::size_t>(i)]);
  return static_cast<int>(bits % 365) + 1;
}

const std::vector<profile_entry>& basic_profile() {
  // PS3.15 Table E.1-1, Basic Profile column. Where the table allows a choice
  // (X/Z, Z/D, X/Z/D ...) the gentlest action that keeps type 2 attributes
  // present is taken: Z before X, D before Z when Z is not allowed.
  static const std::vector<profile_entry> table{
      {0x0008, 0x0050, 'Z', "AccessionNumber"},
      {0x0018, 0x4000, 'X', "AcquisitionComments"},
      {0x0040, 0x0555, 'X', "AcquisitionContextSequence"},
      {0x0008, 0x0022, 'Z', "AcquisitionDate"},
      {0x0008, 0x002A, 'Z', "AcquisitionDateTime"},
      {0x0018, 0x1400, 'D', "AcquisitionDeviceProcessingDescription"},
      {0x0018, 0x9424, 'X', "AcquisitionProtocolDescription"},
      {0x0008, 0x0032, 'Z', "AcquisitionTime"},
      {0x0040, 0x4035, 'X', "ActualHumanPerformersSequence"},
      {0x0010, 0x21B0, 'X', "AdditionalPatientHistory"},
      {0x0038, 0x0010, 'X', "AdmissionID"},
      {0x0038, 0x0020, 'X', "AdmittingDate"},
      {0x0008, 0x1084, 'X', "AdmittingDiagnosesCodeSequence"},
      {0x0008, 0x1080, 'X', "AdmittingDiagnosesDescription"},
      {0x0038, 0x0021, 'X', "AdmittingTime"},
      {0x0010, 0x2110, 'X', "Allergies"},
      {0x4000, 0x0010, 'X', "Arbitrary"},
      {0x0040, 0xA078, 'X', "AuthorObserverSequence"},
      {0x0010, 0x1081, 'X', "BranchOfService"},
      {0x0018, 0x1007, 'X', "CassetteID"},
      {0x0040, 0x0280, 'X', "CommentsOnThePerformedProcedureStep"},
      {0x0020, 0x9161, 'U', "ConcatenationUID"},
      {0x0040, 0x3001, 'X', "ConfidentialityConstraintOnPatientDataDescription"},
      {0x0070, 0x0084, 'Z', "ContentCreatorName"},
      {0x0070, 0x0086, 'X', "ContentCreatorIdentificationCodeSequence"},
      {0x0008, 0x0023, 'Z', "ContentDate"},
      {0x0040, 0xA730, 'X', "ContentSequence"},
      {0x0008, 0x0033, 'Z', "ContentTime"},
      {0x0008, 0x010D, 'U', "ContextGroupExtensionCreatorUID"},
      {0x0018, 0x0010, 'Z', "ContrastBolusAgent"},
      {0x0018, 0xA003, 'X', "ContributionDescription"},
      {0x0010, 0x2150, 'X', "CountryOfResidence"},
      {0x0008, 0x9123, 'U', "CreatorVersionUID"},
      {0x0038, 0x0300, 'X', "CurrentPatientLocation"},
      {0x0008, 0x0025, 'X', "CurveDate"},
      {0x0008, 0x0035, 'X', "CurveTime"},
      {0x0040, 0xA07C, 'X', "CustodialOrganizationSequence"},
      {0xFFFC, 0xFFFC, 'X', "DataSetTrailingPadding"},
      {0x0008, 0x2111, 'X', "DerivationDescription"},
      {0x0018, 0x700A, 'D', "DetectorID"},
      {0x0018, 0x1000, 'Z', "DeviceSerialNumber"},
      {0x0018, 0x1002, 'U', "DeviceUID"},
      {0x0400, 0x0100, 'X', "DigitalSignatureUID"},
      {0xFFFA, 0xFFFA, 'X', "DigitalSignaturesSequence"},
      {0x0020, 0x9164, 'U', "DimensionOrganizationUID"},
      {0x0038, 0x0040, 'X', "DischargeDiagnosisDescription"},
      {0x4008, 0x011A, 'X', "DistributionAddress"},
      {0x4008, 0x0119, 'X', "DistributionName"},
      {0x300A, 0x0013, 'U', "DoseReferenceUID"},
      {0x0010, 0x2160, 'X', "EthnicGroup"},
      {0x0008, 0x0058, 'U', "FailedSOPInstanceUIDList"},
      {0x0070, 0x031A, 'U', "FiducialUID"},
      {0x0040, 0x2017, 'Z', "FillerOrderNumberImagingServiceRequest"},
      {0x0020, 0x9158, 'X', "FrameComments"},
      {0x0020, 0x0052, 'U', "FrameOfReferenceUID"},
      {0x0018, 0x1008, 'X', "GantryID"},
      {0x0018, 0x1005, 'X', "GeneratorID"},
      {0x0070, 0x0001, 'Z', "GraphicAnnotationSequence"},
      {0x0040, 0x4037, 'X', "HumanPerformerName"},
      {0x0040, 0x4036, 'X', "HumanPerformerOrganization"},
      {0x0088, 0x0200, 'X', "IconImageSequence"},
      {0x0008, 0x4000, 'X', "IdentifyingComments"},
      {0x0020, 0x4000, 'X', "ImageComments"},
      {0x0028, 0x4000, 'X', "ImagePresentationComments"},
      {0x0040, 0x2400, 'X', "ImagingServiceRequestComments"},
      {0x4008, 0x0300, 'X', "Impressions"},
      {0x0008, 0x0014, 'U', "InstanceCreatorUID"},
      {0x0008, 0x0081, 'X', "InstitutionAddress"},
      {0x0008, 0x1040, 'X', "InstitutionalDepartmentName"},
      {0x0010, 0x1050, 'X', "InsurancePlanIdentification"},
      {0x0008, 0x0082, 'Z', "InstitutionCodeSequence"},
      {0x0008, 0x0080, 'Z', "InstitutionName"},
      {0x0040, 0x1011, 'X', "IntendedRecipientsOfResultsIdentificationSequence"},
      {0x4008, 0x0111, 'X', "InterpretationApproverSequence"},
      {0x4008, 0x010C, 'X', "InterpretationAuthor"},
      {0x4008, 0x0115, 'X', "InterpretationDiagnosisDescription"},
      {0x4008, 0x0202, 'X', "InterpretationIDIssuer"},
      {0x4008, 0x0102, 'X', "InterpretationRecorder"},
      {0x4008, 0x010B, 'X', "InterpretationText"},
      {0x4008, 0x010A, 'X', "InterpretationTranscriber"},
      {0x0008, 0x3010, 'U', "IrradiationEventUID"},
      {0x0038, 0x0011, 'X', "IssuerOfAdmissionID"},
      {0x0010, 0x0021, 'X', "IssuerOfPatientID"},
      {0x0038, 0x0061, 'X', "IssuerOfServiceEpisodeID"},
      {0x0028, 0x1214, 'U', "LargePaletteColorLookupTableUID"},
      {0x0010, 0x21D0, 'X', "LastMenstrualDate"},
      {0x0400, 0x0404, 'X', "MAC"},
      {0x0010, 0x2000, 'X', "MedicalAlerts"},
      {0x0010, 0x1090, 'X', "MedicalRecordLocator"},
      {0x0010, 0x1080, 'X', "MilitaryRank"},
      {0x0400, 0x0550, 'X', "ModifiedAttributesSequence"},
      {0x0020, 0x3406, 'X', "ModifiedImageDescription"},
      {0x0020, 0x3401, 'X', "ModifyingDeviceID"},
      {0x0020, 0x3404, 'X', "ModifyingDeviceManufacturer"},
      {0x0008, 0x1060, 'X', "NameOfPhysiciansReadingStudy"},
      {0x0040, 0x1010, 'X', "NamesOfIntendedRecipientsOfResults"},
      {0x0010, 0x2180, 'X', "Occupation"},
      {0x0008, 0x1070, 'Z', "OperatorsName"},
      {0x0008, 0x1072, 'X', "OperatorIdentificationSequence"},
      {0x0400, 0x0561, 'X', "OriginalAttributesSequence"},
      {0x0040, 0x2010, 'X', "OrderCallbackPhoneNumber"},
      {0x0040, 0x2008, 'X', "OrderEnteredBy"},
      {0x0040, 0x2009, 'X', "OrderEntererLocation"},
      {0x0010, 0x1000, 'X', "OtherPatientIDs"},
      {0x0010, 0x1002, 'X', "OtherPatientIDsSequence"},
      {0x0010, 0x1001, 'X', "OtherPatientNames"},
      {0x0008, 0x0024, 'X', "OverlayDate"},
      {0x0008, 0x0034, 'X', "OverlayTime"},
      {0x0028, 0x1199, 'U', "PaletteColorLookupTableUID"},
      {0x0040, 0xA07A, 'X', "ParticipantSequence"},
      {0x0010, 0x1040, 'X', "PatientAddress"},
      {0x0010, 0x4000, 'X', "PatientComments"},
      {0x0010, 0x0020, 'P', "PatientID"},
      {0x0010, 0x2203, 'Z', "PatientSexNeutered"},
      {0x0038, 0x0500, 'X', "PatientState"},
      {0x0040, 0x1004, 'X', "PatientTransportArrangements"},
      {0x0010, 0x1010, 'X', "PatientAge"},
      {0x0010, 0x0030, 'Z', "PatientBirthDate"},
      {0x0010, 0x1005, 'X', "PatientBirthName"},
      {0x0010, 0x0032, 'X', "PatientBirthTime"},
      {0x0038, 0x0400, 'X', "PatientInstitutionResidence"},
      {0x0010, 0x0050, 'X', "PatientInsurancePlanCodeSequence"},
      {0x0010, 0x1060, 'X', "PatientMotherBirthName"},
      {0x0010, 0x0010, 'P', "PatientName"},
      {0x0010, 0x0101, 'X', "PatientPrimaryLanguageCodeSequence"},
      {0x0010, 0x0102, 'X', "PatientPrimaryLanguageModifierCodeSequence"},
      {0x0010, 0x21F0, 'X', "PatientReligiousPreference"},
      {0x0010, 0x0040, 'Z', "PatientSex"},
      {0x0010, 0x1020, 'X', "PatientSize"},
      {0x0010, 0x2154, 'X', "PatientTelephoneNumbers"},
      {0x0010, 0x1030, 'X', "PatientWeight"},
      {0x0040, 0x0243, 'X', "PerformedLocation"},
      {0x0040, 0x0254, 'X', "PerformedProcedureStepDescription"},
      {0x0040, 0x0253, 'X', "PerformedProcedureStepID"},
      {0x0040, 0x0244, 'X', "PerformedProcedureStepStartDate"},
      {0x0040, 0x0245, 'X', "PerformedProcedureStepStartTime"},
      {0x0040, 0x0241, 'X', "PerformedStationAETitle"},
      {0x0040, 0x4030, 'X', "PerformedStationGeographicLocationCodeSequence"},
      {0x0040, 0x0242, 'X', "PerformedStationName"},
      {0x0040, 0x0248, 'X', "PerformedStationNameCodeSequence"},
      {0x0008, 0x1052, 'X', "PerformingPhysicianIdentificationSequence"},
      {0x0008, 0x1050, 'X', "PerformingPhysicianName"},
      {0x0040, 0x1102, 'X', "PersonAddress"},
      {0x0040, 0x1101, 'Z', "PersonIdentificationCodeSequence"},
      {0x0040, 0xA123, 'D', "PersonName"},
      {0x0040, 0x1103, 'X', "PersonTelephoneNumbers"},
      {0x4008, 0x0114, 'X', "PhysicianApprovingInterpretation"},
      {0x0008, 0x1062, 'X', "PhysiciansReadingStudyIdentificationSequence"},
      {0x0008, 0x1048, 'X', "PhysiciansOfRecord"},
      {0x0008, 0x1049, 'X', "PhysiciansOfRecordIdentificationSequence"},
      {0x0040, 0x2016, 'Z', "PlacerOrderNumberImagingServiceRequest"},
      {0x0018, 0x1004, 'X', "PlateID"},
      {0x0040, 0x0012, 'X', "PreMedication"},
      {0x0010, 0x21C0, 'X', "PregnancyStatus"},
      {0x0018, 0x1030, 'D', "ProtocolName"},
      {0x0040, 0x2001, 'X', "ReasonForTheImagingServiceRequest"},
      {0x0032, 0x1030, 'X', "ReasonForStudy"},
      {0x0400, 0x0402, 'X', "ReferencedDigitalSignatureSequence"},
      {0x3006, 0x0024, 'U', "ReferencedFrameOfReferenceUID"},
      {0x0040, 0x4023, 'U', "ReferencedGeneralPurposeScheduledProcedureStepTransactionUID"},
      {0x0038, 0x1234, 'X', "ReferencedPatientAliasSequence"},
      {0x0008, 0x1120, 'X', "ReferencedPatientSequence"},
      {0x0008, 0x1111, 'Z', "ReferencedPerformedProcedureStepSequence"},
      {0x0400, 0x0403, 'X', "ReferencedSOPInstanceMACSequence"},
      {0x0008, 0x1155, 'U', "ReferencedSOPInstanceUID"},
      {0x0004, 0x1511, 'U', "ReferencedSOPInstanceUIDInFile"},
      {0x0008, 0x1110, 'Z', "ReferencedStudySequence"},
      {0x0008, 0x0092, 'X', "ReferringPhysicianAddress"},
      {0x0008, 0x0096, 'X', "ReferringPhysicianIdentificationSequence"},
      {0x0008, 0x0090, 'Z', "ReferringPhysicianName"},
      {0x0008, 0x0094, 'X', "ReferringPhysicianTelephoneNumbers"},
      {0x0010, 0x2152, 'X', "RegionOfResidence"},
      {0x3006, 0x00C2, 'U', "RelatedFrameOfReferenceUID"},
      {0x0040, 0x0275, 'X', "RequestAttributesSequence"},
      {0x0032, 0x1070, 'X', "RequestedContrastAgent"},
      {0x0040, 0x1400, 'X', "RequestedProcedureComments"},
      {0x0032, 0x1060, 'Z', "RequestedProcedureDescription"},
      {0x0040, 0x1001, 'X', "RequestedProcedureID"},
      {0x0040, 0x1005, 'X', "RequestedProcedureLocation"},
      {0x0032, 0x1032, 'X', "RequestingPhysician"},
      {0x0032, 0x1033, 'X', "RequestingService"},
      {0x0010, 0x2299, 'X', "ResponsibleOrganization"},
      {0x0010, 0x2297, 'X', "ResponsiblePerson"},
      {0x4008, 0x4000, 'X', "ResultsComments"},
      {0x4008, 0x0118, 'X', "ResultsDistributionListSequence"},
      {0x4008, 0x0042, 'X', "ResultsIDIssuer"},
      {0x300E, 0x0008, 'Z', "ReviewerName"},
      {0x0040, 0x4034, 'X', "ScheduledHumanPerformersSequence"},
      {0x0038, 0x001E, 'X', "ScheduledPatientInstitutionResidence"},
      {0x0040, 0x000B, 'X', "ScheduledPerformingPhysicianIdentificationSequence"},
      {0x0040, 0x0006, 'X', "ScheduledPerformingPhysicianName"},
      {0x0040, 0x0004, 'X', "ScheduledProcedureStepEndDate"},
      {0x0040, 0x0005, 'X', "ScheduledProcedureStepEndTime"},
      {0x0040, 0x0007, 'X', "ScheduledProcedureStepDescription"},
      {0x0040, 0x0011, 'X', "ScheduledProcedureStepLocation"},
      {0x0040, 0x0002, 'X', "ScheduledProcedureStepStartDate"},
      {0x0040, 0x0003, 'X', "ScheduledProcedureStepStartTime"},
      {0x0040, 0x0001, 'X', "ScheduledStationAETitle"},
      {0x0040, 0x4027, 'X', "ScheduledStationGeographicLocationCodeSequence"},
      {0x0040, 0x0010, 'X', "ScheduledStationName"},
      {0x0040, 0x4025, 'X', "ScheduledStationNameCodeSequence"},
      {0x0032, 0x1020, 'X', "ScheduledStudyLocation"},
      {0x0032, 0x1021, 'X', "ScheduledStudyLocationAETitle"},
      {0x0008, 0x0021, 'D', "SeriesDate"},
      {0x0008, 0x103E, 'X', "SeriesDescription"},
      {0x0020, 0x000E, 'U', "SeriesInstanceUID"},
      {0x0008, 0x0031, 'D', "SeriesTime"},
      {0x0038, 0x0062, 'X', "ServiceEpisodeDescription"},
      {0x0038, 0x0060, 'X', "ServiceEpisodeID"},
      {0x0010, 0x21A0, 'X', "SmokingStatus"},
      {0x0008, 0x0018, 'U', "SOPInstanceUID"},
      {0x0038, 0x0050, 'X', "SpecialNeeds"},
      {0x0008, 0x1010, 'Z', "StationName"},
      {0x0088, 0x0140, 'U', "StorageMediaFileSetUID"},
      {0x0032, 0x4000, 'X', "StudyComments"},
      {0x0008, 0x0020, 'Z', "StudyDate"},
      {0x0008, 0x1030, 'X', "StudyDescription"},
      {0x0020, 0x0010, 'Z', "StudyID"},
      {0x0032, 0x0012, 'X', "StudyIDIssuer"},
      {0x0020, 0x000D, 'U', "StudyInstanceUID"},
      {0x0008, 0x0030, 'Z', "StudyTime"},
      {0x0020, 0x0200, 'U', "SynchronizationFrameOfReferenceUID"},
      {0x0040, 0xDB0D, 'U', "TemplateExtensionCreatorUID"},
      {0x0040, 0xDB0C, 'U', "TemplateExtensionOrganizationUID"},
      {0x4000, 0x4000, 'X', "TextComments"},
      {0x2030, 0x0020, 'X', "TextString"},
      {0x0008, 0x0201, 'X', "TimezoneOffsetFromUTC"},
      {0x0088, 0x0910, 'X', "TopicAuthor"},
      {0x0088, 0x0912, 'X', "TopicKeywords"},
      {0x0088, 0x0906, 'X', "TopicSubject"},
      {0x0088, 0x0904, 'X', "TopicTitle"},
      {0x0008, 0x1195, 'U', "TransactionUID"},
      {0x0040, 0xA124, 'U', "UID"},
      {0x0040, 0xA088, 'Z', "VerifyingObserverIdentificationCodeSequence"},
      {0x0040, 0xA075, 'D', "VerifyingObserverName"},
      {0x0040, 0xA073, 'Z', "VerifyingObserverSequence"},
      {0x0040, 0xA027, 'X', "VerifyingOrganization"},
      {0x0038, 0x4000, 'X', "VisitComments"},
  };
  return table;
}

namespace {

// A dummy value the VR allows, for D.
std::string dummy_for(DcmEVR vr) {
  switch (vr) {
  case EVR_PN:
    return "ANONYMIZED";
  case EVR_DA:
    return "19000101";
  case EVR_TM:
    return "000000";
  case EVR_DT:
    return "19000101000000";
  case EVR_AS:
    return "000Y";
  case EVR_IS:
  case EVR_DS:
    return "0";
  case EVR_SH:
  case EVR_CS:
  case EVR_AE:
    return "ANONYMIZED";
  default:
    return "ANONYMIZED";
  }
}

bool is_overlay_or_curve(const DcmTagKey& tag) {
  std::uint16_t group = tag.getGroup();
  bool overlay = group >= 0x6000 && group <= 0x601E && (group % 2 == 0) &&
                 (tag.getElement() == 0x3000 || tag.getElement() == 0x4000);
  bool curve = group >= 0x5000 && group <= 0x501E && (group % 2 == 0);
  return overlay || curve;
}

/// Who the data set is about, as the pseudonyms need it.
struct patient_pseudonym {
  std::string name; // the pseudonym for PatientID and PatientName
  int day_shift = 0;
};

// Days since 1970-01-01 of a date of the proleptic Gregorian calendar, and
// back (Howard Hinnant's civil calendar algorithms).
long days_from_civil(long y, unsigned m, unsigned d) {
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400;
  auto yoe = static_cast<unsigned>(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long>(doe) - 719468;
}

void civil_from_days(long z, long& y, unsigned& m, unsigned& d) {
  z += 719468;
  long era = (z >= 0 ? z : z - 146096) / 146097;
  auto doe = static_cast<unsigned>(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<long>(yoe) + era * 400;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

/// "YYYYMMDD" (and whatever follows it in a DT) moved back by `days`;
/// nothing when the text does not start with a valid date.
std::optional<std::string> shift_date(const std::string& text, int days) {
  if (text.size() < 8 || !std::all_of(text.begin(), text.begin() + 8, [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) != 0;
      }))
    return std::nullopt;
  long year = std::stol(text.substr(0, 4));
  auto month = static_cast<unsigned>(std::stoul(text.substr(4, 2)));
  auto day = static_cast<unsigned>(std::stoul(text.substr(6, 2)));
  if (month < 1 || month > 12 || day < 1 || day > 31)
    return std::nullopt;
  civil_from_days(days_from_civil(year, month, day) - days, year, month, day);
  if (year < 0 || year > 9999)
    return std::nullopt;
  char date[16];
  std::snprintf(date, sizeof date, "%04ld%02u%02u", year, month, day);
  return date + text.substr(8);
}

/// Every value of a DA or DT element moved back, or nothing if one cannot be.
std::optional<std::string> shift_dates(DcmElement& element, int days) {
  OFString value;
  if (element.getOFStringArray(value).bad())
    return std::nullopt;
  std::string all{value.c_str()}, shifted;
  std::size_t start = 0;
  while (start <= all.size()) {
    auto end = all.find('\\', start);
    auto moved = shift_date(all.substr(start, end - start), days);
    if (!moved)
      return std::nullopt;
    shifted += (shifted.empty() ? "" : "\\") + *moved;
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
  return shifted;
}

void apply(DcmItem& item, pseudonymizer& pseudonyms, const patient_pseudonym& patient) {
  static const std::map<std::pair<std::uint16_t, std::uint16_t>, char> actions = [] {
    std::map<std::pair<std::uint16_t, std::uint16_t>, char> m;
    for (auto& e : basic_profile())
      m[{e.group, e.element}] = e.action;
    return m;
  }();
  // Walk backwards so removals do not disturb the positions still to visit.
  for (long i = static_cast<long>(item.card()) - 1; i >= 0; --i) {
    DcmElement* element = item.getElement(static_cast<unsigned long>(i));
    if (!element)
      continue;
    DcmTagKey tag = element->getTag();
    // Odd groups are private, or (0001, 0003, 0005, 0007) not allowed at all:
    // either way nobody can tell what they hold.
    if (tag.getGroup() % 2 == 1 || is_overlay_or_curve(tag)) {
      delete item.remove(element);
      continue;
    }
    auto it = actions.find({tag.getGroup(), tag.getElement()});
    char action = it == actions.end() ? 'K' : it->second;
    DcmEVR vr = element->ident();
    if (action != 'K' && pseudonyms.options().shift_dates && (vr == EVR_DA || vr == EVR_DT)) {
      if (element->getLength() == 0)
        continue;
      if (auto shifted = shift_dates(*element, patient.day_shift)) {
        element->putString(shifted->c_str());
        continue;
      }
      // Not a date anyone can move: the profile's action takes it.
    }
    switch (action) {
    case 'X':
      delete item.remove(element);
      continue;
    case 'Z':
      if (vr == EVR_SQ)
        static_cast<DcmSequenceOfItems*>(element)->clear();
      else
        element->clear();
      continue;
    case 'D':
      if (vr == EVR_SQ)
        static_cast<DcmSequenceOfItems*>(element)->clear();
      else
        element->putString(dummy_for(vr).c_str());
      continue;
    case 'P':
      // A value in a binary VR (UN from a file that lost its VRs) cannot
      // take text: it is emptied instead.
      if (vr == EVR_PN || vr == EVR_LO || vr == EVR_SH)
        element->putString(patient.name.c_str());
      else
        element->clear();
      continue;
    case 'U': {
      OFString value;
      // UI values may hold several UIDs; each is mapped.
      if (element->getOFStringArray(value).good() && !value.empty()) {
        std::string mapped, all{value.c_str()};
        std::size_t start = 0;
        while (start <= all.size()) {
          auto end = all.find('\\', start);
          mapped += (mapped.empty() ? "" : "\\") + pseudonyms.uid(all.substr(start, end - start));
          if (end == std::string::npos)
            break;
          start = end + 1;
        }
        element->putString(mapped.c_str());
      }
      continue;
    }
    default:
      break;
    }
    if (vr == EVR_SQ) {
      auto* sequence = static_cast<DcmSequenceOfItems*>(element);
      for (unsigned long n = 0; n < sequence->card(); ++n)
        apply(*sequence->getItem(n), pseudonyms, patient);
    }
  }
}

std::string text_of(DcmItem& dataset, const DcmTagKey& tag) {
  OFString value;
  dataset.findAndGetOFStringArray(tag, value);
  return value.c_str();
}

void add_method_code(DcmItem& dataset, const char* value, const char* meaning) {
  DcmItem* code = nullptr;
  if (dataset.findOrCreateSequenceItem(DCM_DeidentificationMethodCodeSequence, code, -2).good() &&
      code) {
    code->putAndInsertString(DCM_CodeValue, value);
    code->putAndInsertString(DCM_CodingSchemeDesignator, "DCM");
    code->putAndInsertString(DCM_CodeMeaning, meaning);
  }
}

} // namespace

void deidentify(DcmItem& dataset, pseudonymizer& pseudonyms) {
  // The patient as the sender names them: by ID (within its issuer), or by
  // name and birth date where the ID is empty, so that patients without an
  // ID do not all become one.
  auto id = text_of(dataset, DCM_PatientID);
  auto patient_key = !id.empty() ? "id\n" + text_of(dataset, DCM_IssuerOfPatientID) + "\n" + id
                                 : "name\n" + text_of(dataset, DCM_PatientName) + "\n" +
                                       text_of(dataset, DCM_PatientBirthDate);
  patient_pseudonym patient{pseudonyms.patient(patient_key), pseudonyms.day_shift(patient_key)};
  pseudonyms.note(patient.name, "patient_id", id);
  pseudonyms.note(patient.name, "patient_name", text_of(dataset, DCM_PatientName));
  bool shift = pseudonyms.options().shift_dates;
  apply(dataset, pseudonyms, patient);
  dataset.putAndInsertString(DCM_PatientIdentityRemoved, "YES");
  dataset.putAndInsertString(DCM_DeidentificationMethod,
                             // LO: at most 64 characters.
                             shift ? "PS3.15 Basic Profile, modified dates (dcmstreams)"
                                   : "PS3.15 Basic Profile (dcmstreams)");
  dataset.putAndInsertString(DCM_LongitudinalTemporalInformationModified,
                             shift ? "MODIFIED" : "REMOVED");
  add_method_code(dataset, "113100", "Basic Application Confidentiality Profile");
  if (shift)
    add_method_code(dataset, "113107",
                    "Retain Longitudinal Temporal Information Modified Dates Option");
}

status deidentify_file(const std::filesystem::path& input, const std::filesystem::path& output,
                       pseudonymizer& pseudonyms) {
  try {
    DcmFileFormat file;
    if (auto problem = load_dicom_file(file, input))
      return problem;
    DcmDataset& data = *file.getDataset();
    E_TransferSyntax xfer = data.getOriginalXfer();
    deidentify(data, pseudonyms);
    // The meta header is rebuilt from the data set, with the new SOP Instance UID.
    file.getMetaInfo()->clear();
    OFCondition cond =
        file.saveFile(output.c_str(), xfer == EXS_Unknown ? EXS_LittleEndianExplicit : xfer);
    if (cond.bad())
      return failure{ec::io_error, output.string() + ": cannot write: " + cond.text()};
    return std::nullopt;
  } catch (const std::exception& e) {
    return failure{ec::invalid_dataset,
                   input.string() + ": not a readable DICOM file: DCMTK threw: " + e.what()};
  }
}

} // namespace dcmstreams
