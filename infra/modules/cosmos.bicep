// Cosmos DB for NoSQL: the index and the change feed. Keys are off (disableLocalAuth): the app
// signs in with its identity, which holds the data-plane Built-in Data Contributor role. The
// containers are the ones the code defines (infra/cosmos-containers.json, generated from it).
param name string
param location string
param tags object
param databaseName string
@description('0: serverless; otherwise the provisioned RU/s of the database.')
param throughput int
@description('The app identity.')
param principalId string
@description('The user running azd (empty: none).')
param userPrincipalId string = ''

var serverless = throughput == 0
var cosmosDbBuiltInDataContributor = '00000000-0000-0000-0000-000000000002'
var containers = loadJsonContent('../cosmos-containers.json')

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [{ locationName: location, failoverPriority: 0, isZoneRedundant: false }]
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
    capabilities: serverless ? [{ name: 'EnableServerless' }] : []
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
    backupPolicy: { type: 'Continuous', continuousModeProperties: { tier: 'Continuous7Days' } }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: { id: databaseName }
    options: serverless ? {} : { throughput: throughput }
  }
}

resource container 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = [
  for definition in containers: {
    parent: database
    name: definition.id
    properties: {
      resource: definition
    }
  }
]

resource appAccess 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: account
  name: guid(account.id, principalId, cosmosDbBuiltInDataContributor)
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/${cosmosDbBuiltInDataContributor}'
    principalId: principalId
    scope: account.id
  }
}

resource userAccess 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = if (!empty(userPrincipalId)) {
  parent: account
  name: guid(account.id, userPrincipalId, cosmosDbBuiltInDataContributor)
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/${cosmosDbBuiltInDataContributor}'
    principalId: userPrincipalId
    scope: account.id
  }
}

output endpoint string = account.properties.documentEndpoint
output name string = account.name
