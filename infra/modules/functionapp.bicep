// The Function App on the Flex Consumption plan (FC1, Linux, Python), running as the
// user-assigned identity: its deployment package, AzureWebJobsStorage, the DICOM store, Cosmos
// DB, Event Grid and Application Insights are all reached with that identity, no key.
param planName string
param appName string
param location string
param tags object
param identityId string
param identityClientId string
param instanceMemoryMB int
param maximumInstanceCount int
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string
param deploymentContainer string
param dicomContainer string
param importContainer string
param blobEventsQueue string
param operationsQueue string
param cosmosEndpoint string
param cosmosDatabase string
param changeTopicEndpoint string
param insightsConnectionString string
param corsOrigins string
param authAuthority string
param authAudience string
@description('FHIR R4 base URL for DICOMcast; empty: DICOMcast off')
param fhirUrl string = ''
@description('Identifier system for Patient identifiers written by DICOMcast (empty: IssuerOfPatientID or none)')
param fhirPatientSystem string = ''

@description('The Python version the app is tested with (the CI runs 3.11).')
param pythonVersion string = '3.11'

// The app answers STOW bodies over this with 413 and a pointer to upload sessions
// (POST /v1/uploads); the host's own limit is set above it so those requests reach the app.
var maxRequestBytes = 104857600
var hostRequestLimit = 2 * maxRequestBytes
// WADO converts an instance in memory up to this size (about three times it at worst): 256 MiB
// fits the default 2048 MB instance.
var transcodeMaxBytes = 268435456

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: { name: 'python', version: pythonVersion }
    }
  }
}

// Separate from the site so DICOMWEB_PUBLIC_URL can name the site's own host name.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsettings'
  properties: {
    // The Functions host and Durable Functions: identity-based AzureWebJobsStorage.
    AzureWebJobsStorage__blobServiceUri: blobEndpoint
    AzureWebJobsStorage__queueServiceUri: queueEndpoint
    AzureWebJobsStorage__tableServiceUri: tableEndpoint
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: string(hostRequestLimit)
    // The Durable operations' start queue trigger (connection DICOMWEB_BLOB_CONNECTION_STRING), with the identity.
    DICOMWEB_BLOB_CONNECTION_STRING__queueServiceUri: queueEndpoint
    DICOMWEB_BLOB_CONNECTION_STRING__credential: 'managedidentity'
    DICOMWEB_BLOB_CONNECTION_STRING__clientId: identityClientId
    // Telemetry, host and app, sent with the identity (Application Insights local auth is off).
    APPLICATIONINSIGHTS_CONNECTION_STRING: insightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // DefaultAzureCredential in the app picks the user-assigned identity by this.
    AZURE_CLIENT_ID: identityClientId
    // The app (dicomweb/settings.py).
    DICOMWEB_BLOB_STORE: 'azure'
    DICOMWEB_INDEX_STORE: 'cosmos'
    DICOMWEB_MAX_REQUEST_BYTES: string(maxRequestBytes)
    DICOMWEB_BULKDATA_THRESHOLD: '1024'
    DICOMWEB_CORS_ORIGINS: corsOrigins
    DICOMWEB_BLOB_ACCOUNT_URL: blobEndpoint
    DICOMWEB_BLOB_CONTAINER: dicomContainer
    DICOMWEB_COSMOS_ENDPOINT: cosmosEndpoint
    DICOMWEB_COSMOS_DATABASE: cosmosDatabase
    DICOMWEB_PUBLIC_URL: 'https://${app.properties.defaultHostName}/v1'
    DICOMWEB_EVENTGRID_ENDPOINT: changeTopicEndpoint
    DICOMWEB_INGEST_SCAN_SECONDS: '0'
    DICOMWEB_BLOB_EVENTS_QUEUE: blobEventsQueue
    DICOMWEB_TRANSCODE_MAX_BYTES: string(transcodeMaxBytes)
    DICOMWEB_IMPORT_CONTAINER: importContainer
    DICOMWEB_DELETE_LEASE_SECONDS: '10'
    DICOMWEB_STAGING_GRACE_SECONDS: '3600'
    // Every instance the app scales out to would reconcile at its start: run verify as an operation instead.
    DICOMWEB_VERIFY_AT_STARTUP: '0'
    DICOMWEB_OPERATIONS_RUNNER: 'durable'
    DICOMWEB_OPERATIONS_QUEUE: operationsQueue
    DICOMWEB_UPLOAD_EXPIRY_SECONDS: '3600'
    DICOMWEB_AUTH_AUTHORITY: authAuthority
    DICOMWEB_AUTH_AUDIENCE: authAudience
    DICOMWEB_AUTH_ROLES_CLAIM: 'roles'
    DICOMWEB_AUTH_ROLES_FILE: ''
    // Host names besides the site's own (the host of DICOMWEB_PUBLIC_URL is always allowed).
    DICOMWEB_ALLOWED_HOSTS: ''
    // The Functions front end is the only hop; X-Forwarded-* from clients is not trusted.
    DICOMWEB_TRUSTED_PROXIES: ''
    // Bounded work for any input (docs/robustness.md): the same defaults as the embedded server.
    DICOMWEB_MAX_PARTS: '5000'
    DICOMWEB_MAX_FRAMES: '1000'
    DICOMWEB_MAX_INFLATED_BYTES: string(256 * 1024 * 1024)
    DICOMWEB_MAX_HEADER_BYTES: string(64 * 1024 * 1024)
    DICOMWEB_QIDO_MAX_VALUES: '200'
    DICOMWEB_QIDO_TIMEOUT_SECONDS: '30'
    // DICOMcast (docs/dicomcast.md): the timer function runs it, signed in with the identity.
    DICOMWEB_FHIR_URL: fhirUrl
    DICOMWEB_FHIR_AUTH: 'azure'
    DICOMWEB_FHIR_PATIENT_SYSTEM: fhirPatientSystem
    DICOMWEB_FHIR_DOSE_OBSERVATIONS: 'false'
    DICOMWEB_CAST_POLL_SECONDS: '0'
    // How long a hot frame GET trusts its cached frame index before asking the index again (docs/architecture.md).
    DICOMWEB_FRAME_CACHE_TTL_SECONDS: '10'
    // A reindex waits this long before its first page: Cosmos reads may lag writes below Strong consistency (docs/extended-query-tags.md).
    DICOMWEB_REINDEX_SETTLE_SECONDS: '5'
    // STOW parts up to this size are received in memory, within this much per process; larger ones are spooled (docs/stow-receive.md).
    DICOMWEB_STOW_MEMORY_PART_BYTES: string(1024 * 1024)
    DICOMWEB_STOW_MEMORY_TOTAL_BYTES: string(64 * 1024 * 1024)
  }
}

// Publishing with a user name and password (FTP, the SCM site) is off: azd deploys with Entra ID.
resource ftp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: { allow: false }
}

resource scm 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: { allow: false }
}

output name string = app.name
output uri string = 'https://${app.properties.defaultHostName}'
