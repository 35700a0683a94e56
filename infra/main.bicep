// The whole deployment `azd up` creates: one resource group holding the Function App (Flex
// Consumption), its user-assigned identity, Storage, Cosmos DB, Event Grid and monitoring.
// Every service is reached with the identity: no key, connection string or secret anywhere.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('The azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('The Azure region of every resource.')
param location string

@description('Memory of one Function App instance, in MB (Flex Consumption: 512, 2048 or 4096).')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('The most instances the Function App scales out to (Flex Consumption: 1 to 1000).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Days a deleted or overwritten blob can be restored (blob soft delete).')
@minValue(1)
@maxValue(365)
param blobSoftDeleteDays int = 7

@description('Cosmos DB throughput: 0 for serverless (pay per request), or the RU/s of a provisioned database.')
@minValue(0)
param cosmosThroughput int = 0

@description('Origins allowed to call the API from a browser (comma-separated; * for any).')
param corsOrigins string = ''

@description('The OpenID Connect authority whose tokens the API accepts (empty: set it before serving).')
param authAuthority string = ''

@description('The audience (application ID URI or client id) the tokens must carry.')
param authAudience string = ''

@description('Object id of the user running azd, given data access to Storage and Cosmos DB for troubleshooting (empty: none).')
param principalId string = ''

var tags = { 'azd-env-name': environmentName }
var token = toLower(uniqueString(subscription().id, environmentName, location))

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: group
  params: {
    name: 'id-dicomweb-${token}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: group
  params: {
    workspaceName: 'log-dicomweb-${token}'
    insightsName: 'appi-dicomweb-${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: group
  params: {
    name: 'stdicom${token}'
    location: location
    tags: tags
    softDeleteDays: blobSoftDeleteDays
    dicomContainer: dicomContainer
    importContainer: importContainer
    deploymentContainer: deploymentContainer
    blobEventsQueue: blobEventsQueue
    operationsQueue: operationsQueue
    principalId: identity.outputs.principalId
    userPrincipalId: principalId
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  scope: group
  params: {
    name: 'cosmos-dicomweb-${token}'
    location: location
    tags: tags
    databaseName: cosmosDatabase
    throughput: cosmosThroughput
    principalId: identity.outputs.principalId
    userPrincipalId: principalId
  }
}

module events 'modules/events.bicep' = {
  name: 'events'
  scope: group
  params: {
    systemTopicName: 'evgst-dicomweb-${token}'
    changeTopicName: 'evgt-dicomweb-${token}'
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    dicomContainer: dicomContainer
    blobEventsQueue: blobEventsQueue
    principalId: identity.outputs.principalId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: group
  params: {
    planName: 'plan-dicomweb-${token}'
    appName: 'func-dicomweb-${token}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainer: deploymentContainer
    dicomContainer: dicomContainer
    importContainer: importContainer
    blobEventsQueue: blobEventsQueue
    operationsQueue: operationsQueue
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabase: cosmosDatabase
    changeTopicEndpoint: events.outputs.changeTopicEndpoint
    insightsConnectionString: monitoring.outputs.connectionString
    corsOrigins: corsOrigins
    authAuthority: authAuthority
    authAudience: authAudience
  }
}

var dicomContainer = 'dicomweb'
var importContainer = 'import'
var deploymentContainer = 'app-package'
var blobEventsQueue = 'blob-events'
var operationsQueue = 'dicomweb-operations'
var cosmosDatabase = 'dicomweb'

// What azd writes to the environment (.azure/<env>/.env).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = group.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = functionApp.outputs.uri
output DICOMWEB_SERVICE_ROOT string = '${functionApp.outputs.uri}/v1'
output AZURE_STORAGE_ACCOUNT string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output DICOMWEB_BLOB_CONTAINER string = dicomContainer
output DICOMWEB_IMPORT_CONTAINER string = importContainer
output AZURE_COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output AZURE_EVENTGRID_CHANGE_TOPIC string = events.outputs.changeTopicName
output AZURE_EVENTGRID_CHANGE_TOPIC_ENDPOINT string = events.outputs.changeTopicEndpoint
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.insightsName
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
